/* herd command line: dispatches to one file per subcommand. */
#include <stdio.h>

int main(void) {
    fprintf(stderr, "herd: under construction\n");
    return 1;
}
