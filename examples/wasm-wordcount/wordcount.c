/* wasm-wordcount: a data-reduction agent. Reads every regular file under /in
 * (recursively), counts bytes, lines and words, and the 10 most frequent words
 * (ASCII letters, lower-cased, at most 31 characters), and writes one small JSON
 * document to /out/counts.json. Deterministic: same inputs, same bytes out. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TABLE 65536
#define WORD_MAX 32

struct entry { char word[WORD_MAX]; unsigned long count; };
static struct entry table[TABLE];
static unsigned long files, bytes, lines, words, distinct;

static unsigned hash(const char *s) {
    unsigned h = 2166136261u;
    while (*s) h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static void add_word(const char *w) {
    unsigned i = hash(w) & (TABLE - 1);
    for (unsigned probes = 0; probes < TABLE; probes++, i = (i + 1) & (TABLE - 1)) {
        if (table[i].count == 0) { strcpy(table[i].word, w); table[i].count = 1; distinct++; return; }
        if (strcmp(table[i].word, w) == 0) { table[i].count++; return; }
    }
}

static void count_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return; }
    char word[WORD_MAX]; int len = 0, c;
    files++;
    while ((c = fgetc(f)) != EOF) {
        bytes++;
        if (c == '\n') lines++;
        if (isalpha(c)) {
            if (len < WORD_MAX - 1) word[len++] = (char)tolower(c);
        } else if (len) {
            word[len] = 0; add_word(word); words++; len = 0;
        }
    }
    if (len) { word[len] = 0; add_word(word); words++; }
    fclose(f);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void walk(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { count_file(dir); return; }
    char *names[4096]; int n = 0; struct dirent *e;
    while ((e = readdir(d)) && n < 4096) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name); /* fixed order keeps output deterministic */
    for (int i = 0; i < n; i++) {
        char path[1024]; struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) == 0) { if (S_ISDIR(st.st_mode)) walk(path); else count_file(path); }
        free(names[i]);
    }
}

static int by_count(const void *a, const void *b) {
    const struct entry *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

int main(void) {
    walk("/in");
    struct entry *all = malloc(sizeof(struct entry) * (distinct ? distinct : 1));
    unsigned long k = 0;
    for (unsigned i = 0; i < TABLE; i++) if (table[i].count) all[k++] = table[i];
    qsort(all, k, sizeof *all, by_count);
    FILE *out = fopen("/out/counts.json", "w");
    if (!out) { fprintf(stderr, "cannot write /out/counts.json\n"); return 1; }
    fprintf(out, "{\"files\": %lu, \"bytes\": %lu, \"lines\": %lu, \"words\": %lu, \"distinct\": %lu, \"top\": [",
            files, bytes, lines, words, distinct);
    for (unsigned long i = 0; i < k && i < 10; i++)
        fprintf(out, "%s[\"%s\", %lu]", i ? ", " : "", all[i].word, all[i].count);
    fprintf(out, "]}\n");
    fclose(out);
    printf("counted %lu words in %lu files\n", words, files);
    return 0;
}
