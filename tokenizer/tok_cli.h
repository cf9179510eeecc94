/* tok_cli: the "tokens" command (count, encode, decode) shared by
 * tollgatectl and the stand-alone tollgate-tokens tool. */
#ifndef TOK_CLI_H
#define TOK_CLI_H

/* Runs "tokens count|encode|decode --tokenizer PATH_OR_NAME [FILE]" or
 * "tokens --help". argv[0] is the command's own name and is not read.
 * Returns the process exit status: 0 success, 1 failure, 2 usage error. */
int tok_cli_main(int argc, char **argv);

#endif
