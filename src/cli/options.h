/* Table-driven command-line options shared by every subcommand: parsing with range
 * checks, and --help generated from the same table. */
#ifndef HERD_CLI_OPTIONS_H
#define HERD_CLI_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

typedef enum opt_type { OPT_INT, OPT_FLOAT, OPT_STR, OPT_FLAG, OPT_U64 } opt_type;

typedef struct cli_option {
    const char *name;    /* "--epochs" */
    opt_type type;
    void *dest;          /* int*, float*, const char**, int* (flag: set to 1), uint64_t* */
    double min, max;     /* numeric range (ignored when min == max) */
    const char *metavar; /* "N" */
    const char *help;
    int seen;            /* set by the parser when given on the command line */
} cli_option;

typedef struct cli_command {
    const char *name;    /* "train" */
    const char *usage;   /* "herd train MODEL.spec [options]" */
    const char *summary; /* one line */
    int n_positional;    /* exact number of positional arguments */
    int (*run)(int argc, char **argv);
} cli_command;

/* Parses argv[first..argc) into opts and positionals. Returns 0 on success, 1 if --help
 * was printed, 2 after printing a one-line usage error to stderr. */
int cli_parse(int argc, char **argv, int first, cli_option *opts, const cli_command *cmd, const char **positional);
void cli_print_help(FILE *f, const cli_command *cmd, const cli_option *opts);
/* The option named `name` (for seen checks). */
cli_option *cli_find(cli_option *opts, const char *name);

/* "herd: <msg>" on stderr, one line. */
void cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* The thread count for requested (<= 0: the default): the cores this process may use, divided
 * among the local_ranks ranks of the job on this host unless the launcher bound each to its
 * own; warns on stderr (rank 0 only) when requested exceeds them. */
int cli_threads(int requested, int rank, int local_ranks);

/* Index of value in the NULL-terminated choices; else prints "OPTION expects a, b or c,
 * found 'value'" and returns -1 (the caller exits 2). */
int cli_choice(const char *option, const char *value, const char *const *choices);

#endif
