/* The smallest useful agent: write one small result file. Used by bench/runtime.py. */
#include <stdio.h>
int main(void) {
    FILE *f = fopen("/out/result.txt", "w");
    if (!f) return 1;
    fputs("ok\n", f);
    fclose(f);
    return 0;
}
