/* test_data.c: token shards and shard sets (src/data.c): uint16 and uint32 round trips
 * and headers, writers refusing ids that do not fit, shard lists (commas, globs in sorted
 * order, escapes, the list stored for resuming), reads across shard boundaries and the
 * wrap at the end, and 64-bit positions: the position -> shard mapping on synthetic sizes
 * far beyond 2^32, and a stream of 3 sparse shards (6.4e9 tokens, no disk used) read by
 * the batcher past 2^32. Malformed shards through the CLI: tests/test_malformed.py. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "formats/data.h"

static char dir[1024];

/* the checks name themselves: the message is the location that matters */
static void check(int ok, const char *what) { CHECK(ok, "%s", what); }

static char *in_dir(const char *name) {
    static char buf[4][1400];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int32_t header_int(const char *p, int i) {
    unsigned char b[4] = {0};
    FILE *f = fopen(p, "rb");
    if (f) {
        fseek(f, 4L * i, SEEK_SET);
        if (fread(b, 1, 4, f) != 4) memset(b, 0, 4);
        fclose(f);
    }
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

static long file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

static void test_round_trips(void) {
    enum { N = 1000 };
    mtp_token t[N];
    mtp_err err;
    for (int i = 0; i < N; i++) t[i] = (mtp_token)(i * 37 % 256);
    char *p16 = in_dir("u16.bin"), *p32 = in_dir("u32.bin");
    check(mtp_shard_width(256) == 2 && mtp_shard_width(65536) == 2 && mtp_shard_width(65537) == 4 &&
              mtp_shard_width(128256) == 4, "width: uint16 up to vocab 65536, else uint32");
    check(mtp_shard_write(p16, t, N, 256, &err) == 0, "write uint16");
    check(header_int(p16, 0) == 20240520 && header_int(p16, 1) == 1 && header_int(p16, 2) == N &&
              header_int(p16, 3) == 0 && header_int(p16, 255) == 0 && file_size(p16) == 1024 + 2 * N,
          "uint16 header: magic 20240520, version 1, count, zeros; 2 bytes a token");
    for (int i = 0; i < N; i++) t[i] = (mtp_token)(65536 + i * 4 % 4465); /* all above 65535 */
    t[7] = 70000;
    t[8] = 0;
    check(mtp_shard_write(p32, t, N, 70001, &err) == 0, "write uint32");
    check(header_int(p32, 0) == 20240801 && header_int(p32, 1) == 7 && header_int(p32, 2) == N &&
              header_int(p32, 3) == 0 && file_size(p32) == 1024 + 4 * N,
          "uint32 header: magic 20240801, version 7, count; 4 bytes a token");
    mtp_shard s;
    int ok = mtp_shard_open(&s, p32, 70001, &err) == 0;
    check(ok && s.width == 4 && s.n == N, "open uint32");
    int same = ok;
    for (int i = 0; ok && i < N; i++) same &= mtp_shard_at(&s, i) == t[i];
    check(same, "uint32 tokens read back");
    if (ok) mtp_shard_free(&s);
    ok = mtp_shard_open(&s, p32, 70000, &err) == 0;
    check(!ok && strstr(err.msg, p32) && strstr(err.msg, "70000") && strstr(err.msg, "position 7"),
          "uint32 id 70000 refused for vocab 70000, naming file, id and position");
    if (ok) mtp_shard_free(&s);
    ok = mtp_shard_open(&s, p16, 256, &err) == 0;
    check(ok && s.width == 2 && s.n == N && mtp_shard_at(&s, 3) == 111, "open uint16");
    if (ok) mtp_shard_free(&s);
}

static void test_writer_errors(void) {
    mtp_token t[3] = {1, 65536, 2};
    mtp_err err;
    char *p = in_dir("refused.bin");
    check(mtp_shard_write_width(p, t, 3, 2, &err) != 0 && strstr(err.msg, p) && strstr(err.msg, "65536") &&
              file_size(p) < 0, "uint16 writer refuses id 65536, writes nothing");
    check(mtp_shard_write_width(p, t, 3, 4, &err) == 0 && file_size(p) == 1024 + 12, "uint32 writer takes it");
    unlink(p);
    check(mtp_shard_write(p, t, 3, 1000, &err) != 0 && strstr(err.msg, "65536") && strstr(err.msg, "vocab_size 1000") &&
              file_size(p) < 0, "writer refuses an id >= vocab_size");
    check(mtp_shard_write(p, t, 0, 1000, &err) != 0 && file_size(p) < 0, "writer refuses 0 tokens");
}

static void test_find(void) {
    /* synthetic sizes: the mapping never looks at a file */
    uint64_t size[6] = {2147483647, 1, 2147483647, 3, 2147483647, 5000000000ull}, start[7] = {0};
    for (int i = 0; i < 6; i++) start[i + 1] = start[i] + size[i];
    int ok = start[6] == 11442450945ull;
    struct { uint64_t pos; int shard; } cases[] = {
        {0, 0}, {2147483646, 0}, {2147483647, 1}, {2147483648ull, 2}, {4294967294ull, 2},
        {4294967295ull, 3}, {4294967297ull, 3}, {4294967298ull, 4}, {6442450944ull, 4},
        {6442450945ull, 5}, {11442450944ull, 5}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ok &= mtp_shardset_find(start, 6, cases[i].pos) == cases[i].shard;
    for (uint64_t x = 12345; x < start[6]; x = x * 3 + 7) { /* against a linear scan */
        int s = 0;
        while (start[s + 1] <= x) s++;
        ok &= mtp_shardset_find(start, 6, x) == s;
    }
    check(ok, "position -> shard over 1.1e10 synthetic tokens (64-bit starts)");
}

static void write_tokens(const char *p, mtp_token first, int n) {
    mtp_token t[64];
    mtp_err err;
    for (int i = 0; i < n; i++) t[i] = first + (mtp_token)i;
    if (mtp_shard_write(p, t, n, 1000, &err)) {
        printf("%s\n", err.msg);
        exit(1);
    }
}

static void test_lists(void) {
    mtp_err err;
    /* names that need escapes, and a glob that must come back sorted */
    write_tokens(in_dir("s_2.bin"), 200, 5);
    write_tokens(in_dir("s_1.bin"), 100, 3);
    write_tokens(in_dir("s_10.bin"), 300, 4);
    write_tokens(in_dir("odd,name[1].bin"), 400, 2);
    char list[4096];
    snprintf(list, sizeof list, "%s/s_*.bin,%s/odd\\,name\\[1\\].bin", dir, dir);
    mtp_shardset ss;
    int ok = mtp_shardset_open(&ss, list, 1000, &err) == 0;
    if (!ok) printf("%s\n", err.msg);
    check(ok && ss.n == 4 && ss.total == 14, "list: a sorted glob plus an escaped path");
    if (!ok) return;
    mtp_token got[20], want[20] = {100, 101, 102, 300, 301, 302, 303, 200, 201, 202, 203, 204, 400, 401,
                                   100, 101, 102, 300, 301, 302};
    mtp_shardset_read(&ss, 0, 20, got); /* 14 tokens, then the wrap to the start */
    check(!memcmp(got, want, sizeof got), "read: shards in glob order (s_1, s_10, s_2), then wraps");
    mtp_shardset_read(&ss, 13 + 14 * 5, 3, got);
    check(got[0] == 401 && got[1] == 100 && got[2] == 101, "read across the end, from a position past it");
    char stored[4096];
    check(mtp_shardset_list(&ss, stored, sizeof stored, &err) == 0 && strstr(stored, "odd\\,name\\[1].bin") &&
              !strstr(stored, "*"), "stored list: expanded and escaped");
    check(mtp_shardset_list(&ss, stored, 20, &err) != 0, "stored list: refuses a short buffer");
    mtp_shardset_list(&ss, stored, sizeof stored, &err);
    mtp_shardset again;
    int ok2 = mtp_shardset_open(&again, stored, 1000, &err) == 0;
    int same = ok2 && again.n == ss.n;
    for (int i = 0; same && i < ss.n; i++) same = !strcmp(again.shards[i].path, ss.shards[i].path);
    check(same, "stored list reopens the same files in the same order");
    if (ok2) mtp_shardset_free(&again);
    mtp_batcher bt;
    mtp_batcher_init(&bt, &ss, 2, 3, 1, 0, 0);
    mtp_token w[8];
    mtp_batcher_get(&bt, 1, w); /* rows start at 6 and 9 */
    check(w[0] == 303 && w[1] == 200 && w[4] == 202 && w[7] == 400, "batcher: windows span shard boundaries");
    mtp_batcher_free(&bt);
    mtp_shardset_free(&ss);

    const char *odd = in_dir("odd,name[1].bin");
    char one[1500];
    ok = mtp_shard_list_escape(one, sizeof one, odd) == 0 && mtp_shardset_open(&ss, one, 1000, &err) == 0;
    check(ok && ss.n == 1 && !strcmp(ss.shards[0].path, odd), "an escaped path is a one-entry list of itself");
    if (ok) mtp_shardset_free(&ss);
    check(mtp_shard_list_escape(one, 10, odd) != 0, "escape: refuses a short buffer");
    ok = mtp_shardset_open_paths(&ss, &odd, 1, 1000, &err) == 0;
    check(ok && ss.total == 2, "open_paths takes a path as it is");
    if (ok) mtp_shardset_free(&ss);

    snprintf(list, sizeof list, "%s/nothing_*.bin", dir);
    check(mtp_shardset_open(&ss, list, 1000, &err) != 0 && strstr(err.msg, list), "a pattern matching nothing");
    snprintf(list, sizeof list, "%s/s_1.bin,,%s/s_2.bin", dir, dir);
    check(mtp_shardset_open(&ss, list, 1000, &err) != 0 && strstr(err.msg, "empty entry"), "an empty entry");
    snprintf(list, sizeof list, "%s/s_1.bin,%s/missing.bin", dir, dir);
    check(mtp_shardset_open(&ss, list, 1000, &err) != 0 && strstr(err.msg, "missing.bin"),
          "a missing shard in a list is named");
    snprintf(list, sizeof list, "%s/s_1.bin,%s/s_2.bin", dir, dir);
    check(mtp_shardset_open(&ss, list, 201, &err) != 0 && strstr(err.msg, "s_2.bin") && strstr(err.msg, "position 1"),
          "a bad id in the second shard names that shard and its position");
}

/* A uint16 shard of n tokens whose data is a hole, except `m` marker tokens at `at`. */
static int sparse_shard(const char *p, int32_t n, int64_t at, const uint16_t *marker, int m) {
    unsigned char hdr[1024] = {0};
    int32_t h[3] = {20240520, 1, n};
    memcpy(hdr, h, sizeof h); /* x86-64 and arm64 are little-endian, like the format */
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int ok = fd >= 0 && write(fd, hdr, sizeof hdr) == (ssize_t)sizeof hdr &&
             ftruncate(fd, 1024 + 2 * (off_t)n) == 0 &&
             (m == 0 || pwrite(fd, marker, 2 * (size_t)m, 1024 + 2 * at) == 2 * m);
    struct stat sb;
    ok = ok && fstat(fd, &sb) == 0 && (int64_t)sb.st_blocks * 512 < (int64_t)1 << 24; /* really sparse */
    if (fd >= 0) close(fd);
    return ok;
}

static void test_sparse(void) {
    const int32_t N = INT32_MAX; /* the most tokens one shard holds */
    uint16_t end0[3] = {11, 12, 13}, start1[2] = {21, 22}, mid2[8] = {31, 32, 33, 34, 35, 36, 37, 38};
    const uint64_t g = 5300000000ull; /* a global position inside shard 2, past 2^32 */
    const uint64_t start2 = 2 * (uint64_t)N;
    int ok = sparse_shard(in_dir("big_0.bin"), N, N - 3, end0, 3) &&
             sparse_shard(in_dir("big_1.bin"), N, 0, start1, 2) &&
             sparse_shard(in_dir("big_2.bin"), N, (int64_t)(g - start2), mid2, 8);
    if (!ok) { /* a file system without holes: 12 GB are not worth writing for this */
        printf("sparse files not supported here: the >2^32-token stream is skipped\n");
        for (int i = 0; i < 3; i++) unlink(in_dir(i == 0 ? "big_0.bin" : i == 1 ? "big_1.bin" : "big_2.bin"));
        return;
    }
    char list[4096];
    snprintf(list, sizeof list, "%s/big_*.bin", dir);
    mtp_shardset ss;
    mtp_err err;
    ok = mtp_shardset_open(&ss, list, 0, &err) == 0; /* vocab 0: no scan of 12 GB of holes */
    check(ok && ss.n == 3 && ss.total == 3 * (uint64_t)N, "three 2^31-1-token shards: 6.4e9 tokens in total");
    if (!ok) return;
    mtp_token t[8];
    mtp_shardset_read(&ss, (uint64_t)N - 3, 5, t);
    check(t[0] == 11 && t[2] == 13 && t[3] == 21 && t[4] == 22, "read across the first boundary (at 2^31-1)");
    mtp_shardset_read(&ss, ss.total - 1, 3, t);
    check(t[0] == 0 && t[1] == 0 && t[2] == 0, "read across the end wraps to the start");
    mtp_batcher bt;
    mtp_batcher_init(&bt, &ss, 2, 1000, 3, 0, 0);
    check(bt.n_windows == ss.total / 1000, "window count is 64-bit");
    mtp_token w[2 * 1003];
    mtp_batcher_get(&bt, g / 2000, w); /* row 0 starts at k*B*T = g */
    int same = 1;
    for (int i = 0; i < 8; i++) same &= w[i] == mid2[i];
    check(same && w[8] == 0, "sequential batch k = 2,650,000 starts at token 5.3e9 (past 2^32)");
    mtp_batcher_free(&bt);
    mtp_batcher_init(&bt, &ss, 1, 1, 7, 0, 0);
    mtp_batcher_get(&bt, ss.total + g, w); /* one lap later: the same 8 tokens */
    same = 1;
    for (int i = 0; i < 8; i++) same &= w[i] == mid2[i];
    check(same, "batch k = total + 5.3e9 (T 1) wraps modulo the 64-bit total");
    mtp_batcher_free(&bt);
    mtp_batcher_init(&bt, &ss, 1, 1 << 20, 1, 1, 42);
    check(bt.n_windows == ss.total >> 20, "shuffled: every window of the stream");
    mtp_batcher_free(&bt);
    mtp_shardset_free(&ss);
    for (int i = 0; i < 3; i++) unlink(in_dir(i == 0 ? "big_0.bin" : i == 1 ? "big_1.bin" : "big_2.bin"));
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mtp_test_data_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    test_round_trips();
    test_writer_errors();
    test_find();
    test_lists();
    test_sparse();
    const char *left[] = {"u16.bin", "u32.bin", "refused.bin", "s_1.bin", "s_2.bin", "s_10.bin", "odd,name[1].bin"};
    for (size_t i = 0; i < sizeof left / sizeof *left; i++) unlink(in_dir(left[i]));
    rmdir(dir);
    return check_finish();
}
