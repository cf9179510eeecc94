/* tok_ucd_gen: build-time generator of the Unicode tables of the tokenizer.
 * Reads UnicodeData.txt (General_Category, Canonical_Combining_Class,
 * canonical decompositions), PropList.txt (White_Space) and
 * DerivedNormalizationProps.txt (Full_Composition_Exclusion) from the Unicode
 * Character Database and writes a C header: two-stage tables of class bytes
 * (see tok_ucd.h) and combining classes, fully expanded canonical
 * decompositions and the canonical composition pairs (for NFC, tok_nfc.c).
 * Usage: tok_ucd_gen UnicodeData.txt PropList.txt DerivedNormalizationProps.txt OUTPUT.h */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NCP 0x110000
#define BLOCK 256
#define NBLOCK (NCP / BLOCK)

/* Bits of a class byte; keep in sync with tok_ucd.h. */
enum { C_L = 1, C_M = 2, C_N = 3, C_P = 4, C_S = 5, C_Z = 6, C_C = 7, F_WS = 8 };

static unsigned char cls[NCP];
static unsigned char ccc[NCP];
static char version[32];

/* Canonical decompositions as read (one level) and fully expanded. */
#define MAXDEC 18
typedef struct dec {
    long cp;
    int n;
    long to[MAXDEC];
} dec_t;
static dec_t decs[4096];
static int ndecs;
static unsigned char excluded[NCP];

static const dec_t *find_dec(long cp)
{
    int lo = 0, hi = ndecs - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (decs[mid].cp == cp)
            return &decs[mid];
        if (decs[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

/* Appends the full canonical decomposition of cp to out[*n]. */
static void expand(long cp, long *out, int *n)
{
    const dec_t *d = find_dec(cp);
    if (!d) {
        if (*n < MAXDEC)
            out[(*n)++] = cp;
        return;
    }
    for (int i = 0; i < d->n; i++)
        expand(d->to[i], out, n);
}

/* Maps the first letter of a General_Category value to a major class. */
static int major_of(const char *gc)
{
    switch (gc[0]) {
    case 'L':
        return C_L;
    case 'M':
        return C_M;
    case 'N':
        return C_N;
    case 'P':
        return C_P;
    case 'S':
        return C_S;
    case 'Z':
        return C_Z;
    default:
        return C_C;
    }
}

/* Fills cls[] from UnicodeData.txt; handles "<..., First>"/"<..., Last>" ranges.
 * Returns the number of records read, or -1 on a read error. */
static long read_unicode_data(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[1024];
    long n = 0, first = -1;
    while (fgets(line, sizeof line, f)) {
        char *fields[6] = {0};
        char *p = line;
        for (int i = 0; i < 6 && p; i++) {
            fields[i] = p;
            p = strchr(p, ';');
            if (p)
                *p++ = '\0';
        }
        if (!fields[2])
            continue;
        long cp = strtol(fields[0], NULL, 16);
        if (cp < 0 || cp >= NCP)
            continue;
        int c = major_of(fields[2]);
        if (strstr(fields[1], ", First>")) {
            first = cp;
            continue;
        }
        long lo = cp;
        if (strstr(fields[1], ", Last>") && first >= 0)
            lo = first;
        first = -1;
        for (long i = lo; i <= cp; i++)
            cls[i] = (unsigned char)c;
        if (fields[3])
            ccc[cp] = (unsigned char)atoi(fields[3]);
        /* A canonical decomposition has no <tag>. */
        if (fields[5] && fields[5][0] && fields[5][0] != '<' && ndecs < 4096) {
            dec_t *d = &decs[ndecs];
            char *q = fields[5], *end;
            d->cp = cp;
            d->n = 0;
            while (d->n < MAXDEC && (d->to[d->n] = strtol(q, &end, 16), end != q)) {
                d->n++;
                q = end;
            }
            if (d->n)
                ndecs++;
        }
        n++;
    }
    fclose(f);
    return n;
}

/* Sets F_WS on every code point PropList.txt lists as White_Space.
 * Returns the number of ranges seen, or -1 on a read error. */
static long read_white_space(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[1024];
    long n = 0;
    while (fgets(line, sizeof line, f)) {
        /* The first line names the version: "# PropList-15.0.0.txt". */
        const char *v = strstr(line, "# PropList-");
        if (v && !version[0])
            sscanf(v + 11, "%31[0-9.]", version);
        if (line[0] == '#' || !strstr(line, "; White_Space"))
            continue;
        char *end;
        long lo = strtol(line, &end, 16), hi = lo;
        if (end[0] == '.' && end[1] == '.')
            hi = strtol(end + 2, NULL, 16);
        for (long i = lo; i <= hi && i < NCP; i++)
            cls[i] |= F_WS;
        n++;
    }
    fclose(f);
    return n;
}

/* Marks Full_Composition_Exclusion code points; returns the ranges read or -1. */
static long read_exclusions(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[1024];
    long n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || !strstr(line, "; Full_Composition_Exclusion"))
            continue;
        char *end;
        long lo = strtol(line, &end, 16), hi = lo;
        if (end[0] == '.' && end[1] == '.')
            hi = strtol(end + 2, NULL, 16);
        for (long i = lo; i <= hi && i < NCP; i++)
            excluded[i] = 1;
        n++;
    }
    fclose(f);
    return n;
}

/* Writes a two-stage byte table named name from t[NCP]. */
static void write_table(FILE *o, const char *name, const unsigned char *t)
{
    static unsigned short stage1[NBLOCK];
    static unsigned char blocks[NBLOCK][BLOCK];
    int nblocks = 0;
    for (int b = 0; b < NBLOCK; b++) {
        int found = -1;
        for (int k = 0; k < nblocks && found < 0; k++)
            if (memcmp(blocks[k], t + (long)b * BLOCK, BLOCK) == 0)
                found = k;
        if (found < 0) {
            memcpy(blocks[nblocks], t + (long)b * BLOCK, BLOCK);
            found = nblocks++;
        }
        stage1[b] = (unsigned short)found;
    }
    fprintf(o, "const unsigned short %s_stage1[%d] = {", name, NBLOCK);
    for (int b = 0; b < NBLOCK; b++)
        fprintf(o, "%s%u,", b % 24 ? "" : "\n", stage1[b]);
    fprintf(o, "\n};\nconst unsigned char %s_stage2[%d][%d] = {\n", name, nblocks, BLOCK);
    for (int k = 0; k < nblocks; k++) {
        fprintf(o, "{");
        for (int i = 0; i < BLOCK; i++)
            fprintf(o, "%s%u,", i % 32 ? "" : "\n", blocks[k][i]);
        fprintf(o, "},\n");
    }
    fprintf(o, "};\n");
}

/* Writes the expanded decompositions and the composition pairs. */
static void write_normalization(FILE *o)
{
    long pool = 0;
    fprintf(o, "#define TOK_UCD_NDECOMP %d\n", ndecs);
    fprintf(o, "const uint32_t tok_ucd_decomp_cp[%d] = {", ndecs);
    for (int i = 0; i < ndecs; i++)
        fprintf(o, "%s%ld,", i % 12 ? "" : "\n", decs[i].cp);
    fprintf(o, "\n};\nconst uint32_t tok_ucd_decomp_at[%d] = {", ndecs + 1);
    for (int i = 0; i <= ndecs; i++) {
        fprintf(o, "%s%ld,", i % 12 ? "" : "\n", pool);
        if (i < ndecs) {
            long out[MAXDEC];
            int n = 0;
            expand(decs[i].cp, out, &n);
            pool += n;
        }
    }
    fprintf(o, "\n};\nconst uint32_t tok_ucd_decomp_pool[%ld] = {", pool ? pool : 1);
    long k = 0;
    for (int i = 0; i < ndecs; i++) {
        long out[MAXDEC];
        int n = 0;
        expand(decs[i].cp, out, &n);
        for (int j = 0; j < n; j++, k++)
            fprintf(o, "%s%ld,", k % 12 ? "" : "\n", out[j]);
    }
    /* Primary composites: two-code-point decompositions not excluded. The
     * list is sorted by (first, second) for binary search. */
    static unsigned long long keys[4096];
    static long vals[4096];
    int nc = 0;
    for (int i = 0; i < ndecs; i++)
        if (decs[i].n == 2 && !excluded[decs[i].cp]) {
            unsigned long long key = (unsigned long long)decs[i].to[0] << 21 | decs[i].to[1];
            int j = nc++;
            while (j > 0 && keys[j - 1] > key) {
                keys[j] = keys[j - 1];
                vals[j] = vals[j - 1];
                j--;
            }
            keys[j] = key;
            vals[j] = decs[i].cp;
        }
    fprintf(o, "\n};\n#define TOK_UCD_NCOMP %d\nconst uint64_t tok_ucd_comp_key[%d] = {", nc, nc);
    for (int i = 0; i < nc; i++)
        fprintf(o, "%s%lluu,", i % 6 ? "" : "\n", keys[i]);
    fprintf(o, "\n};\nconst uint32_t tok_ucd_comp_val[%d] = {", nc);
    for (int i = 0; i < nc; i++)
        fprintf(o, "%s%ld,", i % 12 ? "" : "\n", vals[i]);
    fprintf(o, "\n};\n");
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr,
                "usage: %s UnicodeData.txt PropList.txt DerivedNormalizationProps.txt OUTPUT.h\n",
                argv[0]);
        return 2;
    }
    for (long i = 0; i < NCP; i++)
        cls[i] = C_C; /* unassigned: Cn */
    long nd = read_unicode_data(argv[1]);
    long nw = read_white_space(argv[2]);
    long nx = read_exclusions(argv[3]);
    if (nd < 30000 || nw < 5 || nx < 10 || ndecs < 1000) {
        fprintf(stderr,
                "tok_ucd_gen: implausible UCD input (%ld records, %ld White_Space, %ld "
                "exclusions, %d decompositions)\n",
                nd, nw, nx, ndecs);
        return 1;
    }
    FILE *o = fopen(argv[4], "w");
    if (!o) {
        perror(argv[4]);
        return 1;
    }
    size_t vl = strlen(version);
    if (vl && version[vl - 1] == '.')
        version[vl - 1] = '\0';
    fprintf(o, "/* Generated by tok_ucd_gen from %s, %s and %s. Do not edit. */\n", argv[1],
            argv[2], argv[3]);
    fprintf(o, "#include <stdint.h>\n#define TOK_UCD_VERSION \"%s\"\n",
            version[0] ? version : "unknown");
    write_table(o, "tok_ucd", cls);
    write_table(o, "tok_ucd_ccc", ccc);
    write_normalization(o);
    if (fclose(o) != 0) {
        perror(argv[4]);
        return 1;
    }
    return 0;
}
