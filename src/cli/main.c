/* herd command line: dispatches to one file per subcommand. Only src/cli prints or exits. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"train", cmd_train, "train a model from a spec file on a dataset"},
    {"eval", cmd_eval, "evaluate trained weights on a dataset"},
    {"predict", cmd_predict, "print the predicted class and probability of each image in an IDX file"},
    {"summary", cmd_summary, "print the layers, output shapes, parameters, FLOPs and planned memory of a model"},
    {"bench", cmd_bench, "measure training or inference throughput, optionally per layer"},
    {"export", cmd_export, "write a model and its weights as an ONNX file"},
    {"import", cmd_import, "translate an ONNX file into a model spec and a weights file"},
    {"convert", cmd_convert, "write a dataset as herd shards (memory-mapped, checksummed, ready to train)"},
    {"generate", cmd_generate, "continue a prompt with a trained language model (key-value cache)"},
    {"stats", cmd_stats, "print per-channel mean/std/min/max and class counts of a dataset"},
};

static void print_help(FILE *f) {
    fprintf(f, "usage: herd COMMAND [options]\n\nherd trains neural networks in C: one process or many.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'herd COMMAND --help' for the options of a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("herd 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc, argv);
    cli_error("unknown command '%s' (expected train, eval, predict, summary, bench, export, import, convert or stats; see herd --help)", argv[1]);
    return 2;
}
