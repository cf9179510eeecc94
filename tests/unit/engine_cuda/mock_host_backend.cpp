/* The CUDA backend's host code (eng_cuda_backend.cu) compiled as C++ for the mock
 * build (mock_cuda.cpp stands in for the GPU). */
#include "eng_cuda_backend.cu"
