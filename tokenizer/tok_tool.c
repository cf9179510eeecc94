/* tollgate-tokens: stand-alone "tokens" command (tollgatectl wires the same
 * tok_cli_main); used by the tests and the benchmark. */
#include "tok_cli.h"

int main(int argc, char **argv)
{
    return tok_cli_main(argc, argv);
}
