/* Option parsing for all subcommands from one table per command. */
#include "cli/options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herd/core.h"

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("herd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

cli_option *cli_find(cli_option *opts, const char *name) {
    for (cli_option *o = opts; o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    return NULL;
}

static int usage_error(const cli_command *cmd, const char *fmt, const char *a, const char *b) {
    fputs("herd: ", stderr);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, " (usage: %s; see herd %s --help)\n", cmd->usage, cmd->name);
    return 2;
}

static int set_value(cli_option *o, const char *v, const cli_command *cmd) {
    char *end;
    errno = 0;
    switch (o->type) {
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || (o->min != o->max && (x < o->min || x > o->max)) || x < -2147483647L ||
            x > 2147483647L) {
            char range[64] = "";
            if (o->min != o->max) snprintf(range, sizeof range, " in %g..%g", o->min, o->max);
            char want[96];
            snprintf(want, sizeof want, "an integer%s", range);
            return usage_error(cmd, "%s expects %s", o->name, want);
        }
        *(int *)o->dest = (int)x;
        break;
    }
    case OPT_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        /* digits only: strtoull skips blanks and negates "-1" (" -1" would become 2^64-1) */
        if (*v < '0' || *v > '9' || *end || errno)
            return usage_error(cmd, "%s expects %s", o->name, "a non-negative integer");
        *(uint64_t *)o->dest = (uint64_t)x;
        break;
    }
    case OPT_FLOAT: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x) || (o->min != o->max && (x < o->min || x > o->max))) {
            char want[96];
            if (o->min != o->max) snprintf(want, sizeof want, "a number in [%g, %g]", o->min, o->max);
            else snprintf(want, sizeof want, "a number");
            return usage_error(cmd, "%s expects %s", o->name, want);
        }
        *(float *)o->dest = (float)x;
        break;
    }
    case OPT_STR:
        if (!*v) return usage_error(cmd, "%s expects %s", o->name, "a non-empty value");
        *(const char **)o->dest = v;
        break;
    case OPT_FLAG: *(int *)o->dest = 1; break;
    }
    o->seen = 1;
    return 0;
}

int cli_parse(int argc, char **argv, int first, cli_option *opts, const cli_command *cmd, const char **positional) {
    int npos = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_print_help(stdout, cmd, opts);
            return 1;
        }
        if (a[0] == '-' && a[1] == '-') {
            char name[64];
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            if (len >= sizeof name) return usage_error(cmd, "unknown option '%s'%s", a, "");
            memcpy(name, a, len);
            name[len] = 0;
            cli_option *o = cli_find(opts, name);
            if (!o && strcmp(name, "--model") == 0 && cmd->n_positional >= 1) {
                /* --model FILE names the model (spec or .onnx) wherever it is the first positional */
                const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
                if (!v || !*v) return usage_error(cmd, "%s needs a value%s", name, "");
                if (npos >= cmd->n_positional) return usage_error(cmd, "unexpected argument '%s'%s", v, "");
                positional[npos++] = v;
                continue;
            }
            if (!o) return usage_error(cmd, "unknown option '%s'%s", name, "");
            const char *v;
            if (o->type == OPT_FLAG) {
                if (eq) return usage_error(cmd, "%s takes no value%s", name, "");
                v = "";
            } else if (eq) {
                v = eq + 1;
            } else {
                if (i + 1 >= argc) return usage_error(cmd, "%s needs a value%s", name, "");
                v = argv[++i];
            }
            int r = set_value(o, v, cmd);
            if (r) return r;
        } else if (a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9')) {
            /* short aliases: -n N */
            cli_option *o = NULL;
            if (strcmp(a, "-n") == 0) o = cli_find(opts, "--workers");
            if (!o) return usage_error(cmd, "unknown option '%s'%s", a, "");
            if (i + 1 >= argc) return usage_error(cmd, "%s needs a value%s", a, "");
            int r = set_value(o, argv[++i], cmd);
            if (r) return r;
        } else {
            if (npos >= cmd->n_positional) return usage_error(cmd, "unexpected argument '%s'%s", a, "");
            positional[npos++] = a;
        }
    }
    if (npos < cmd->n_positional) return usage_error(cmd, "missing %s%s", "arguments", "");
    return 0;
}

void cli_print_help(FILE *f, const cli_command *cmd, const cli_option *opts) {
    fprintf(f, "usage: %s\n\n%s\n\noptions:\n", cmd->usage, cmd->summary);
    for (const cli_option *o = opts; o->name; o++) {
        char left[48];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        fprintf(f, "  %-26s %s\n", left, o->help);
    }
    if (cmd->n_positional >= 1 && !cli_find((cli_option *)opts, "--model"))
        fprintf(f, "  %-26s %s\n", "--model FILE", "the model (a spec, or an .onnx file with its weights) in place of the first argument");
    fprintf(f, "  %-26s %s\n", "--help", "show this help");
}

int cli_choice(const char *option, const char *value, const char *const *choices) {
    int n = 0;
    for (; choices[n]; n++)
        if (!strcmp(value, choices[n])) return n;
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
                                choices[i]);
    cli_error("%s expects %s, found '%s'", option, list, value);
    return -1;
}

int cli_threads(int requested, int rank, int local_ranks) {
    int cores = herd_cpu_count();
    /* ranks sharing this host share its cores: a launcher that binds them (srun's default, taskset)
     * already gave each its share (fewer cores than are online); unbound ranks (mpirun --bind-to
     * none) divide the host's. herd train -n N passes --threads itself. */
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int bound = online > 0 && cores < online;
    if (requested <= 0)
        return local_ranks > 1 && !bound ? (cores / local_ranks > 0 ? cores / local_ranks : 1) : cores;
    if (requested > cores && rank == 0)
        fprintf(stderr, "herd: warning: --threads %d exceeds the %d online cores; expect slowdown\n", requested, cores);
    return requested;
}
