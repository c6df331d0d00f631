/* herd generate: text from a trained language model, the prompt tokenized with the token file's
 * vocabulary, new tokens drawn one at a time (greedy, temperature, top-k) with the key-value
 * cache, then decoded back to text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "herd/data.h"
#include "herd/model.h"

int cmd_generate(int argc, char **argv) {
    const char *weights = NULL, *vocab = NULL, *prompt = NULL, *backend = "cpu";
    int tokens = 0, top_k = 0, threads = 0, recompute = 0;
    float temperature = 1.0f;
    uint64_t seed = 1;
    cli_option opts[] = {
        {"--weights", OPT_STR, &weights, 0, 0, "FILE", "trained weights (safetensors; required unless the model is an .onnx file)", 0},
        {"--vocab", OPT_STR, &vocab, 0, 0, "FILE.tok", "the token file the model was trained on (its tokenizer and vocabulary; required)", 0},
        {"--prompt", OPT_STR, &prompt, 0, 0, "TEXT", "the text to continue (required)", 0},
        {"--tokens", OPT_INT, &tokens, 0, 1 << 20, "N", "new tokens to generate (required, >= 1)", 0},
        {"--temperature", OPT_FLOAT, &temperature, 0, 100, "T", "softmax temperature (default 1; 0: always the most likely token)", 0},
        {"--top-k", OPT_INT, &top_k, 0, 1 << 30, "K", "draw among the K most likely tokens only (default: all)", 0},
        {"--seed", OPT_U64, &seed, 0, 0, "N", "seed of the draws (default 1): the same seed gives the same text", 0},
        {"--recompute", OPT_FLAG, &recompute, 0, 0, NULL, "run the whole window for every token instead of the key-value cache (slow; for checking)", 0},
        {"--threads", OPT_INT, &threads, 1, 1024, "N", "threads (default: all cores)", 0},
        {"--backend", OPT_STR, &backend, 0, 0, "NAME", "cpu (default) | ref", 0},
        {0},
    };
    static const cli_command cmd = {"generate", "herd generate MODEL --weights FILE --vocab FILE.tok --prompt TEXT --tokens N [options]",
                                    "Continue a prompt with a trained language model.", 1, NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    if ((!weights && !cli_is_onnx(pos[0])) || !vocab || !prompt) {
        cli_error("generate needs --weights, --vocab and --prompt (usage: %s)", cmd.usage);
        return 2;
    }
    if (tokens < 1) {
        cli_error("--tokens %d: generate at least 1 token", tokens);
        return 2;
    }
    herd_error err = {0};
    herd_tokens *tk = NULL;
    herd_model *m = NULL;
    int32_t *ids = NULL, *out = NULL;
    int rc = 1;
    if (herd_tokens_open(&tk, vocab, &err)) goto fail;
    rc = cli_open_model(pos[0], weights, backend, "fp32", 1, cli_threads(threads, 0, 1), 0, CLI_PLAN_INFERENCE, &m);
    if (rc) goto done;
    rc = 1;
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    int64_t T = (int64_t)c * h * w, V = herd_model_output_size(m) / (T > 0 ? T : 1);
    if (V != herd_tokens_vocab(tk)) {
        herd_fail(&err, HERD_EARG, "%s: a vocabulary of %d tokens, but %s predicts %lld per position: not the token "
                  "file the model was trained on", vocab, herd_tokens_vocab(tk), pos[0], (long long)V);
        goto fail;
    }
    size_t plen = strlen(prompt);
    ids = malloc((plen + 1) * sizeof *ids);
    out = malloc((size_t)tokens * sizeof *out);
    if (!ids || !out) {
        herd_fail(&err, HERD_ENOMEM, "out of memory");
        goto fail;
    }
    int64_t n = 0;
    if (herd_tokens_encode(tk, prompt, plen, ids, (int64_t)plen + 1, &n, &err)) goto fail;
    herd_generate_options o = {tokens, temperature, top_k, seed, recompute};
    double t0 = herd_now();
    if (herd_generate(m, ids, n, &o, out, &err)) goto fail;
    double dt = herd_now() - t0;
    char buf[256];
    fputs(prompt, stdout);
    for (int k = 0; k < tokens; k++) {
        herd_tokens_decode(tk, out[k], buf, sizeof buf);
        fputs(buf, stdout);
    }
    fputc('\n', stdout);
    fprintf(stderr, "herd: %d tokens after a prompt of %lld in %.2f s (%.0f tokens/s%s)\n", tokens, (long long)n, dt,
            tokens / (dt > 0 ? dt : 1e-9), recompute ? ", recomputing the window" : ", key-value cache");
    rc = 0;
fail:
    if (rc) cli_error("%s", err.msg);
done:
    free(ids), free(out);
    herd_tokens_close(tk);
    herd_model_destroy(m);
    return rc;
}
