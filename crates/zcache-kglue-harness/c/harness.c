/*
 * C harness for zcache-kglue: drives every function of include/zcache.h against the
 * real library, as a C host would. Each zc_test_* function returns the number of
 * failed checks; the notes of the last test (figures, and every failed check) are
 * read with zc_harness_log(). The Rust side (tests/c_harness.rs) runs one test at a
 * time.
 *
 * The host here plays a kernel: a page-frame allocator that can fail (every Nth call,
 * after N frames, or at random), that counts outstanding frames and keeps a registry
 * of them (so a test can corrupt pool memory), a swap device that records written-back
 * pages, and a release callback.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zcache.h"
#include "harness.h"

/* The library's page size: build.rs defines ZCACHE_PAGE_16K / ZCACHE_PAGE_64K when the
 * harness is built with feature page-16k / page-64k, as a host would. */
#define PAGE ZCACHE_PAGE_SIZE

/* ------------------------------------------------------------------------------ */
/* Log and checks                                                                  */

static char log_buf[1 << 16];
static size_t log_len;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int failures;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&log_lock);
	if (log_len < sizeof(log_buf) - 1) {
		va_start(ap, fmt);
		int n = vsnprintf(log_buf + log_len, sizeof(log_buf) - log_len, fmt, ap);
		va_end(ap);
		if (n > 0) {
			log_len += (size_t)n;
			if (log_len > sizeof(log_buf) - 1)
				log_len = sizeof(log_buf) - 1;
		}
	}
	pthread_mutex_unlock(&log_lock);
}

/* Only the first few failures of a test are logged in full. */
#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			int nf_ = atomic_fetch_add(&failures, 1);               \
			if (nf_ < 20) {                                         \
				note("%s:%d: CHECK(%s) failed: ", __FILE__,     \
				     __LINE__, #cond);                          \
				note(__VA_ARGS__);                              \
				note("\n");                                     \
			}                                                       \
		}                                                               \
	} while (0)

#define CHECK_EQ(a, b)                                                          \
	do {                                                                    \
		long long a_ = (long long)(a), b_ = (long long)(b);             \
		CHECK(a_ == b_, "%s = %lld, expected %s = %lld", #a, a_, #b,    \
		      b_);                                                      \
	} while (0)

static void begin(void)
{
	log_len = 0;
	log_buf[0] = 0;
	atomic_store(&failures, 0);
}

static int end(void)
{
	return atomic_load(&failures);
}

const char *zc_harness_log(void)
{
	return log_buf;
}

/* ------------------------------------------------------------------------------ */
/* Pages                                                                           */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

enum kind { K_ZERO, K_FILL, K_RANDOM, K_TEXT, K_TEXT2, K_HALF };

static enum kind kind_of(uint32_t seed)
{
	/* 1 in 12 zero, 1 in 12 same-filled, 1 in 12 incompressible, the rest text. */
	switch (mix64(seed) % 12) {
	case 0: return K_ZERO;
	case 1: return K_FILL;
	case 2: return K_RANDOM;
	case 3: return K_HALF;
	case 4: case 5: case 6: return K_TEXT2;
	default: return K_TEXT;
	}
}

static const char *const words[] = {
	"page", "cache", "swap", "frame", "inode", "offset", "zcache", "tmem", "pool",
	"object", "index", "kernel", "store", "load", "invalidate", "evict", "the", "of",
	"and", "compress", "lz4", "buddy", "class", "handle", "shrink", "memory",
};

/* A deterministic page for `seed`: same seed, same bytes. */
static void make_page(uint8_t *p, uint32_t seed)
{
	uint64_t x = mix64((uint64_t)seed * 7919 + 1);
	size_t i = 0;
	switch (kind_of(seed)) {
	case K_ZERO:
		memset(p, 0, PAGE);
		return;
	case K_FILL:
		for (i = 0; i < PAGE; i += 8)
			memcpy(p + i, &x, 8);
		return;
	case K_RANDOM:
		for (i = 0; i < PAGE; i += 8) {
			x = mix64(x);
			memcpy(p + i, &x, 8);
		}
		break;
	case K_HALF:
		for (i = 0; i < PAGE / 2; i += 8) {
			x = mix64(x);
			memcpy(p + i, &x, 8);
		}
		memset(p + PAGE / 2, (int)(seed & 0xff), PAGE / 2);
		break;
	case K_TEXT:
	case K_TEXT2:
		while (i < PAGE) {
			x = mix64(x);
			const char *w = words[x % (sizeof(words) / sizeof(words[0]))];
			size_t n = strlen(w);
			for (size_t j = 0; j < n && i < PAGE; j++)
				p[i++] = (uint8_t)w[j];
			if (i < PAGE)
				p[i++] = (x >> 32) % 9 == 0 ? '\n' : ' ';
			if (kind_of(seed) == K_TEXT2 && (x >> 40) % 5 == 0 && i + 4 <= PAGE) {
				uint32_t r = (uint32_t)(x >> 8);
				memcpy(p + i, &r, 4);
				i += 4;
			}
		}
		break;
	}
	memcpy(p, &seed, sizeof(seed)); /* every non-uniform page is unique */
}

/* The nth seed (from 0) whose page is of kind `k`. */
static uint32_t seed_of(enum kind k, uint32_t nth)
{
	for (uint32_t s = 1;; s++)
		if (kind_of(s) == k && nth-- == 0)
			return s;
}

/* Two compressible pages and an incompressible one, for the directed checks. */
#define T1 seed_of(K_TEXT, 0)
#define T2 seed_of(K_TEXT, 1)
#define RND seed_of(K_RANDOM, 0)

static int page_is(const uint8_t *p, uint32_t seed)
{
	uint8_t want[PAGE];
	make_page(want, seed);
	return memcmp(p, want, PAGE) == 0;
}

static int all_bytes(const uint8_t *p, uint8_t b)
{
	for (size_t i = 0; i < PAGE; i++)
		if (p[i] != b)
			return 0;
	return 1;
}

static struct zcache_filekey inode_key(uint64_t ino)
{
	struct zcache_filekey k;
	memset(&k, 0, sizeof(k));
	/* The kernel's union: the inode number over the first 8 bytes. */
	memcpy(k.fh, &ino, sizeof(ino));
	return k;
}

/* ------------------------------------------------------------------------------ */
/* The host: frame allocator, swap device, release                                 */

struct host {
	/* allocator */
	atomic_long outstanding, allocs, frees, calls, refused;
	long fail_every;   /* 0: never; N: every Nth call fails */
	long fail_after;   /* < 0: never; N: calls after the first N fail */
	int fail_permille; /* random failures (by a hash of the call number) */
	atomic_int fail_all;
	pthread_mutex_t lock; /* guards the frame registry */
	void **frames;
	size_t nframes, capframes;
	/* swap device (writeback) */
	pthread_mutex_t wb_lock;
	uint64_t *wb_offsets;
	uint8_t *wb_pages;
	size_t wb_n, wb_cap;
	uint64_t wb_refuse_mod; /* refuse offsets that are multiples of this (0: none) */
	atomic_long wb_refused;
	/* live writeback claims (slot pinned until release) */
	uint64_t wb_claim_off[64];
	uint64_t wb_claim_token[64];
	int wb_nclaims;
	uint64_t wb_next_token;
	atomic_long wb_claims, wb_releases, wb_protocol_errors;
	/* release */
	atomic_int released;
};

static void host_init(struct host *h)
{
	memset(h, 0, sizeof(*h));
	h->fail_after = -1;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->wb_lock, NULL);
}

static void host_destroy(struct host *h)
{
	free(h->frames);
	free(h->wb_offsets);
	free(h->wb_pages);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->wb_lock);
}

static void *host_alloc_frame(void *hp)
{
	struct host *h = hp;
	long n = atomic_fetch_add(&h->calls, 1) + 1;
	if (atomic_load(&h->fail_all) || (h->fail_every && n % h->fail_every == 0) ||
	    (h->fail_after >= 0 && n > h->fail_after) ||
	    (h->fail_permille && (long)(mix64((uint64_t)n) % 1000) < h->fail_permille)) {
		atomic_fetch_add(&h->refused, 1);
		return NULL;
	}
	void *f = aligned_alloc(PAGE, PAGE);
	if (!f)
		return NULL;
	memset(f, 0xdb, PAGE); /* the kernel hands out frames with old contents */
	pthread_mutex_lock(&h->lock);
	if (h->nframes == h->capframes) {
		size_t cap = h->capframes ? h->capframes * 2 : 256;
		void **nf = realloc(h->frames, cap * sizeof(void *));
		if (!nf) {
			pthread_mutex_unlock(&h->lock);
			free(f);
			return NULL;
		}
		h->frames = nf;
		h->capframes = cap;
	}
	h->frames[h->nframes++] = f;
	pthread_mutex_unlock(&h->lock);
	atomic_fetch_add(&h->allocs, 1);
	atomic_fetch_add(&h->outstanding, 1);
	return f;
}

static void host_free_frame(void *hp, void *f)
{
	struct host *h = hp;
	int found = 0;
	pthread_mutex_lock(&h->lock);
	for (size_t i = h->nframes; i-- > 0;) {
		if (h->frames[i] == f) {
			h->frames[i] = h->frames[--h->nframes];
			found = 1;
			break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	CHECK(found, "free_frame(%p): not a frame this host handed out (or freed twice)", f);
	if (!found)
		return;
	memset(f, 0x6b, PAGE); /* poison */
	free(f);
	atomic_fetch_add(&h->frees, 1);
	atomic_fetch_sub(&h->outstanding, 1);
}

/* The swap device: keeps the last page written to each slot. */
static int device_write(struct host *h, uint64_t offset, const void *page)
{
	pthread_mutex_lock(&h->wb_lock);
	size_t i;
	for (i = 0; i < h->wb_n; i++)
		if (h->wb_offsets[i] == offset)
			break;
	if (i == h->wb_n) {
		if (h->wb_n == h->wb_cap) {
			size_t cap = h->wb_cap ? h->wb_cap * 2 : 256;
			uint64_t *no = realloc(h->wb_offsets, cap * sizeof(uint64_t));
			if (no)
				h->wb_offsets = no;
			uint8_t *np = no ? realloc(h->wb_pages, cap * PAGE) : NULL;
			if (!no || !np) {
				pthread_mutex_unlock(&h->wb_lock);
				return 1; /* the device is full: refuse */
			}
			h->wb_pages = np;
			h->wb_cap = cap;
		}
		h->wb_offsets[h->wb_n++] = offset;
	}
	memcpy(h->wb_pages + i * PAGE, page, PAGE);
	pthread_mutex_unlock(&h->wb_lock);
	return 0;
}

/* Writeback step 2: pin the slot (the kernel's swap-cache folio). At most 64 at once. */
static int host_wb_claim(void *hp, uint32_t type, uint64_t offset, uint64_t *token)
{
	struct host *h = hp;
	CHECK(type == 0, "claim of swap type %u", type);
	pthread_mutex_lock(&h->wb_lock);
	int busy = h->wb_nclaims == 64;
	for (int i = 0; i < h->wb_nclaims; i++)
		if (h->wb_claim_off[i] == offset) {
			atomic_fetch_add(&h->wb_protocol_errors, 1); /* claimed twice */
			busy = 1;
		}
	if (!busy) {
		*token = ++h->wb_next_token;
		h->wb_claim_off[h->wb_nclaims] = offset;
		h->wb_claim_token[h->wb_nclaims++] = *token;
	}
	pthread_mutex_unlock(&h->wb_lock);
	if (busy)
		return 1;
	atomic_fetch_add(&h->wb_claims, 1);
	return 0;
}

static int claim_index(struct host *h, uint64_t offset, uint64_t token)
{
	for (int i = 0; i < h->wb_nclaims; i++)
		if (h->wb_claim_off[i] == offset && h->wb_claim_token[i] == token)
			return i;
	return -1;
}

/* Writeback step 4: refuses slots that are multiples of wb_refuse_mod (as a device with
 * an I/O error would), else writes to the device. */
static int host_wb_write(void *hp, uint32_t type, uint64_t offset, uint64_t token,
			 const void *page)
{
	struct host *h = hp;
	CHECK(type == 0, "writeback of swap type %u", type);
	CHECK(page != NULL, "writeback without a page");
	pthread_mutex_lock(&h->wb_lock);
	int live = claim_index(h, offset, token) >= 0;
	pthread_mutex_unlock(&h->wb_lock);
	if (!live) {
		atomic_fetch_add(&h->wb_protocol_errors, 1);
		return 1;
	}
	if (h->wb_refuse_mod && offset % h->wb_refuse_mod == 0) {
		atomic_fetch_add(&h->wb_refused, 1);
		return 1;
	}
	return device_write(h, offset, page);
}

/* Writeback step 5: unpin. */
static void host_wb_release(void *hp, uint32_t type, uint64_t offset, uint64_t token,
			    int written)
{
	struct host *h = hp;
	(void)type;
	(void)written;
	pthread_mutex_lock(&h->wb_lock);
	int i = claim_index(h, offset, token);
	if (i >= 0) {
		h->wb_claim_off[i] = h->wb_claim_off[h->wb_nclaims - 1];
		h->wb_claim_token[i] = h->wb_claim_token[--h->wb_nclaims];
	}
	pthread_mutex_unlock(&h->wb_lock);
	if (i < 0)
		atomic_fetch_add(&h->wb_protocol_errors, 1);
	atomic_fetch_add(&h->wb_releases, 1);
}

/* The written-back copy of a slot, or NULL. */
static const uint8_t *host_swapped(struct host *h, uint64_t offset)
{
	for (size_t i = 0; i < h->wb_n; i++)
		if (h->wb_offsets[i] == offset)
			return h->wb_pages + i * PAGE;
	return NULL;
}

static void host_release(void *hp)
{
	struct host *h = hp;
	atomic_fetch_add(&h->released, 1);
}

static struct zcache_config config_for(struct host *h)
{
	struct zcache_config c;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.page_size = PAGE;
	c.host = h;
	c.alloc_frame = host_alloc_frame;
	c.free_frame = host_free_frame;
	c.release = host_release;
	return c;
}

static zcache_handle_t setup_or_fail(const struct zcache_config *c)
{
	zcache_handle_t zc = 0;
	int r = zcache_setup(c, &zc);
	CHECK_EQ(r, 0);
	CHECK(zc != 0, "setup gave handle 0");
	return zc;
}

/* Tears down and checks that every frame came back and release ran once. */
static void teardown_and_check(zcache_handle_t zc, struct host *h)
{
	CHECK_EQ(zcache_teardown(zc), 0);
	CHECK_EQ(atomic_load(&h->outstanding), 0);
	CHECK_EQ(atomic_load(&h->released), 1);
	CHECK_EQ(zcache_teardown(zc), -ZCACHE_ENODEV);
}

static struct zcache_stats stats_of(zcache_handle_t zc)
{
	struct zcache_stats s;
	memset(&s, 0, sizeof(s));
	CHECK_EQ(zcache_get_stats(zc, &s), 0);
	return s;
}

/* Every function with handle `zc` must answer -ZCACHE_ENODEV. */
static void expect_dead(zcache_handle_t zc)
{
	uint8_t page[PAGE];
	struct zcache_uuid u;
	struct zcache_stats s;
	struct zcache_shrink_result sr;
	memset(page, 0, sizeof(page));
	memset(&u, 1, sizeof(u));
	struct zcache_filekey k = inode_key(1);
	CHECK_EQ(zcache_cleancache_init_fs(zc, PAGE), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_cleancache_init_shared_fs(zc, &u, PAGE), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_cleancache_get_page(zc, 0, k, 0, page), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_cleancache_put_page(zc, 0, k, 0, page), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_cleancache_invalidate_page(zc, 0, k, 0), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_cleancache_invalidate_inode(zc, 0, k), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_cleancache_invalidate_fs(zc, 0), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_frontswap_init(zc, 0), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_frontswap_store(zc, 0, 0, page), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_frontswap_load(zc, 0, 0, page), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_frontswap_invalidate_page(zc, 0, 0), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_frontswap_invalidate_area(zc, 0), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_get_stats(zc, &s), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_shrink(zc, 0, &sr), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_reclaim(zc, 8, &sr), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_reclaim_wanted(zc), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_shrinker_count(zc), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_shrinker_scan(zc, 8), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_compact(zc), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_teardown(zc), -ZCACHE_ENODEV);
	/* Even with null pointers, the handle is checked first. */
	CHECK_EQ(zcache_frontswap_store(zc, 0, 0, NULL), -ZCACHE_ENODEV);
	CHECK_EQ(zcache_get_stats(zc, NULL), -ZCACHE_ENODEV);
}

/* ------------------------------------------------------------------------------ */
/* Tests                                                                           */

/* Calls before setup, with forged handles, and after teardown. */
int zc_test_no_instance(void)
{
	begin();
	const zcache_handle_t forged[] = {
		0,
		UINT64_MAX,
		(1ULL << 8) | 1,       /* slot 0, generation 1 */
		(12345ULL << 8) | 64,  /* slot 63 */
		(5ULL << 8) | 65,      /* past the table */
		(7ULL << 8) | 0,       /* slot field 0 */
	};
	for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++)
		expect_dead(forged[i]);

	struct host h;
	host_init(&h);
	struct zcache_config c = config_for(&h);
	zcache_handle_t zc = setup_or_fail(&c);
	CHECK_EQ(zcache_cleancache_init_fs(zc, PAGE) >= 0, 1);
	CHECK_EQ(zcache_frontswap_init(zc, 0), 0);
	uint8_t page[PAGE];
	make_page(page, T1);
	CHECK_EQ(zcache_frontswap_store(zc, 0, 1, page), 0);
	teardown_and_check(zc, &h);
	expect_dead(zc);
	/* The slot is reused with a new generation: the old handle stays dead. */
	zcache_handle_t zc2 = setup_or_fail(&c);
	CHECK(zc2 != zc, "a new setup reused the old handle %" PRIu64, zc);
	expect_dead(zc);
	CHECK_EQ(zcache_frontswap_init(zc2, 0), 0);
	CHECK_EQ(zcache_frontswap_load(zc2, 0, 1, page), -ZCACHE_ENOENT);
	CHECK_EQ(zcache_teardown(zc2), 0);
	CHECK_EQ(atomic_load(&h.released), 2);
	expect_dead(zc2);
	note("handles: first %#" PRIx64 ", reused slot %#" PRIx64 "\n", zc, zc2);
	host_destroy(&h);
	return end();
}

/* Every malformed configuration is -ZCACHE_EINVAL; every valid combination works. */
int zc_test_setup_errors(void)
{
	begin();
	struct host h;
	host_init(&h);
	zcache_handle_t zc = 0;
	struct zcache_config c;

	CHECK_EQ(zcache_setup(NULL, &zc), -ZCACHE_EINVAL);
	c = config_for(&h);
	CHECK_EQ(zcache_setup(&c, NULL), -ZCACHE_EINVAL);
	/* Misaligned out pointer. */
	uint64_t out[2];
	CHECK_EQ(zcache_setup(&c, (zcache_handle_t *)((char *)out + 1)), -ZCACHE_EINVAL);

#define BAD(field, value)                                                       \
	do {                                                                    \
		c = config_for(&h);                                             \
		c.field = value;                                                \
		CHECK(zcache_setup(&c, &zc) == -ZCACHE_EINVAL,                  \
		      "setup accepted " #field " = " #value);                   \
	} while (0)
	BAD(size, 0);
	BAD(size, sizeof(struct zcache_config) - 8);
	BAD(size, sizeof(struct zcache_config) + 8);
	BAD(page_size, 8192);
	BAD(page_size, 0);
	BAD(flags, 2);
	BAD(flags, 0x80000000u);
	BAD(compressor, 4); /* zstd: not in a no_std build */
	BAD(compressor, 99);
	BAD(ephemeral_allocator, 3);
	BAD(persistent_allocator, 0xffffffffu);
	BAD(accept_threshold_percent, 101);
	BAD(contexts, 1025);
	BAD(reserved, 1);
	BAD(alloc_frame, NULL);
	BAD(free_frame, NULL);
	BAD(writeback_claim, host_wb_claim); /* one of three writeback callbacks alone */
	BAD(writeback_release, host_wb_release);
#undef BAD
	CHECK_EQ(atomic_load(&h.released), 0);
	CHECK_EQ(atomic_load(&h.outstanding), 0);

	/* Every compressor x allocator pairing stores and loads. */
	int combos = 0;
	for (uint32_t comp = 0; comp <= 3; comp++)
		for (uint32_t ea = 0; ea <= 2; ea++)
			for (uint32_t pa = 0; pa <= 2; pa++) {
				c = config_for(&h);
				c.compressor = comp;
				c.ephemeral_allocator = ea;
				c.persistent_allocator = pa;
				c.contexts = 1 + comp;
				c.max_frames = 1000;
				c.accept_threshold_percent = 100;
				c.flags = ZCACHE_FLAG_FRONTSWAP_EXCLUSIVE_LOADS;
				atomic_store(&h.released, 0);
				zc = setup_or_fail(&c);
				int pool = zcache_cleancache_init_fs(zc, PAGE);
				CHECK(pool >= 0, "init_fs = %d", pool);
				CHECK_EQ(zcache_frontswap_init(zc, 3), 0);
				uint8_t p[PAGE], q[PAGE];
				for (uint32_t s = 100; s < 140; s++) {
					make_page(p, s);
					int r = zcache_frontswap_store(zc, 3, s, p);
					int r2 = zcache_cleancache_put_page(zc, pool, inode_key(s), s, p);
					CHECK(r == 0 || r == -ZCACHE_E2BIG, "store = %d", r);
					CHECK(r2 == 0 || r2 == -ZCACHE_E2BIG, "put = %d", r2);
					if (r == 0) {
						CHECK_EQ(zcache_frontswap_load(zc, 3, s, q), 0);
						CHECK(page_is(q, s), "comp %u: frontswap page %u differs", comp, s);
						/* exclusive loads */
						CHECK_EQ(zcache_frontswap_load(zc, 3, s, q), -ZCACHE_ENOENT);
					}
					if (r2 == 0) {
						CHECK_EQ(zcache_cleancache_get_page(zc, pool, inode_key(s), s, q), 0);
						CHECK(page_is(q, s), "comp %u: cleancache page %u differs", comp, s);
					}
				}
				teardown_and_check(zc, &h);
				combos++;
			}
	note("rejected 16 malformed configurations; %d valid configurations stored and loaded\n",
	     combos);
	host_destroy(&h);
	return end();
}

/* cleancache: many pages byte-exact, exclusive gets, duplicates, invalidations,
 * 64-bit indices, error paths. */
int zc_test_cleancache(void)
{
	begin();
	struct host h;
	host_init(&h);
	struct zcache_config c = config_for(&h);
	zcache_handle_t zc = setup_or_fail(&c);
	uint8_t p[PAGE], q[PAGE];

	CHECK_EQ(zcache_cleancache_init_fs(zc, 8192), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_cleancache_init_fs(zc, 0), -ZCACHE_EINVAL);
	int pool = zcache_cleancache_init_fs(zc, PAGE);
	int other = zcache_cleancache_init_fs(zc, PAGE);
	CHECK(pool >= 0 && other >= 0 && pool != other, "pools %d %d", pool, other);

	enum { N = 3000, INODES = 30 };
	static signed char kept[N];
	int nkept = 0, nbig = 0;
	for (uint32_t i = 0; i < N; i++) {
		uint64_t ino = 1000 + i % INODES;
		/* Indices across the whole 64-bit range: small, past 2^32, near the top. */
		uint64_t index = i % 3 == 0 ? i : i % 3 == 1 ? (1ULL << 40) + i : UINT64_MAX - i;
		make_page(p, i);
		int r = zcache_cleancache_put_page(zc, pool, inode_key(ino), index, p);
		CHECK(r == 0 || r == -ZCACHE_E2BIG, "put %u = %d", i, r);
		kept[i] = r == 0;
		nkept += r == 0;
		nbig += r == -ZCACHE_E2BIG;
	}
	struct zcache_stats s = stats_of(zc);
	CHECK_EQ(s.stored_pages, nkept);
	CHECK_EQ(s.reject_compress_poor + s.reject_mean_compress_poor, nbig);
	note("cleancache: %d puts, %d kept, %d refused as poorly compressible; %" PRIu64
	     " frames, %" PRId64 " same-filled\n",
	     N, nkept, nbig, s.pool_frames, s.same_filled_pages);
	/* The other pool does not see these keys. */
	CHECK_EQ(zcache_cleancache_get_page(zc, other, inode_key(1000), 0, q), -ZCACHE_ENOENT);

	int hits = 0;
	for (uint32_t i = 0; i < N; i++) {
		uint64_t ino = 1000 + i % INODES;
		uint64_t index = i % 3 == 0 ? i : i % 3 == 1 ? (1ULL << 40) + i : UINT64_MAX - i;
		memset(q, 0xa5, PAGE);
		int r = zcache_cleancache_get_page(zc, pool, inode_key(ino), index, q);
		if (kept[i]) {
			CHECK(r == 0, "get %u = %d", i, r);
			CHECK(r != 0 || page_is(q, i), "page %u differs", i);
			hits += r == 0;
		} else {
			CHECK_EQ(r, -ZCACHE_ENOENT);
			CHECK(all_bytes(q, 0xa5), "a miss wrote the page (%u)", i);
		}
		/* Private pool: the get was exclusive, so a second get misses (get-get). */
		CHECK_EQ(zcache_cleancache_get_page(zc, pool, inode_key(ino), index, q), -ZCACHE_ENOENT);
	}
	CHECK_EQ(hits, nkept);
	s = stats_of(zc);
	CHECK_EQ(s.stored_pages, 0);
	CHECK_EQ(s.load_hits, nkept);

	/* Duplicate puts: the newer copy wins. */
	struct zcache_filekey k = inode_key(77);
	make_page(p, T1);
	CHECK_EQ(zcache_cleancache_put_page(zc, pool, k, 9, p), 0);
	make_page(p, T2);
	CHECK_EQ(zcache_cleancache_put_page(zc, pool, k, 9, p), 0);
	CHECK_EQ(zcache_cleancache_get_page(zc, pool, k, 9, q), 0);
	CHECK(page_is(q, T2), "duplicate put: old copy returned");
	CHECK_EQ(stats_of(zc).duplicate_entry, 1);

	/* A failed duplicate put leaves no stale copy. */
	uint32_t rnd = RND;
	make_page(p, T1);
	CHECK_EQ(zcache_cleancache_put_page(zc, pool, k, 10, p), 0);
	make_page(p, rnd);
	CHECK_EQ(zcache_cleancache_put_page(zc, pool, k, 10, p), -ZCACHE_E2BIG);
	CHECK_EQ(zcache_cleancache_get_page(zc, pool, k, 10, q), -ZCACHE_ENOENT);

	/* invalidate_page */
	make_page(p, T1);
	CHECK_EQ(zcache_cleancache_put_page(zc, pool, k, 11, p), 0);
	CHECK_EQ(zcache_cleancache_invalidate_page(zc, pool, k, 11), 1);
	CHECK_EQ(zcache_cleancache_invalidate_page(zc, pool, k, 11), 0);
	CHECK_EQ(zcache_cleancache_get_page(zc, pool, k, 11, q), -ZCACHE_ENOENT);

	/* invalidate_inode drops every page of the file, and only that file. */
	struct zcache_filekey k2 = inode_key(78);
	int put78 = 0;
	for (uint32_t i = 0; i < 200; i++) {
		make_page(p, 5000 + i);
		put78 += zcache_cleancache_put_page(zc, pool, k2, i * 1000003ULL, p) == 0;
		CHECK_EQ(zcache_cleancache_put_page(zc, pool, k, 100 + i, p) == 0,
			 kind_of(5000 + i) != K_RANDOM);
	}
	CHECK_EQ(zcache_cleancache_invalidate_inode(zc, pool, k2), put78);
	CHECK_EQ(zcache_cleancache_invalidate_inode(zc, pool, k2), 0);
	CHECK_EQ(zcache_cleancache_get_page(zc, pool, k2, 0, q), -ZCACHE_ENOENT);
	make_page(p, 5001);
	if (kind_of(5001) != K_RANDOM) {
		CHECK_EQ(zcache_cleancache_get_page(zc, pool, k, 101, q), 0);
		CHECK(page_is(q, 5001), "inode 77 page damaged by invalidate_inode(78)");
	}

	/* File-handle keys use all 24 bytes. */
	struct zcache_filekey fh = { .fh = { 1, 2, 3, 4, 5, 6 } };
	struct zcache_filekey fh2 = { .fh = { 1, 2, 3, 4, 5, 7 } };
	make_page(p, T1);
	CHECK_EQ(zcache_cleancache_put_page(zc, pool, fh, 0, p), 0);
	CHECK_EQ(zcache_cleancache_get_page(zc, pool, fh2, 0, q), -ZCACHE_ENOENT);
	CHECK_EQ(zcache_cleancache_get_page(zc, pool, fh, 0, q), 0);
	CHECK(page_is(q, T1), "file-handle key");

	/* Error paths. */
	CHECK_EQ(zcache_cleancache_put_page(zc, pool, k, 0, NULL), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_cleancache_get_page(zc, pool, k, 0, NULL), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_cleancache_put_page(zc, -1, k, 0, p), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_cleancache_get_page(zc, -5, k, 0, q), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_cleancache_invalidate_page(zc, -1, k, 0), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_cleancache_invalidate_inode(zc, -1, k), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_cleancache_invalidate_fs(zc, -1), -ZCACHE_EINVAL);
	int unknown = 99999;
	CHECK_EQ(zcache_cleancache_put_page(zc, unknown, k, 0, p), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_cleancache_get_page(zc, unknown, k, 0, q), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_cleancache_invalidate_page(zc, unknown, k, 0), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_cleancache_invalidate_inode(zc, unknown, k), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_cleancache_invalidate_fs(zc, unknown), -ZCACHE_ENXIO);

	/* Unmount: the pool id is surrendered. */
	CHECK_EQ(zcache_cleancache_invalidate_fs(zc, pool), 0);
	CHECK_EQ(zcache_cleancache_invalidate_fs(zc, pool), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_cleancache_get_page(zc, pool, k, 101, q), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_cleancache_put_page(zc, pool, k, 101, p), -ZCACHE_ENXIO);
	s = stats_of(zc);
	CHECK_EQ(s.stored_pages, 0);
	CHECK_EQ(s.pool_frames, 0);
	CHECK_EQ(atomic_load(&h.outstanding), 0);
	CHECK_EQ(zcache_cleancache_invalidate_fs(zc, other), 0);

	/* No client cap (the old zcache had 16): 200 mounts at once, each its own pool. */
	enum { MOUNTS = 200 };
	static int mounts[MOUNTS];
	int distinct = 1;
	for (int m = 0; m < MOUNTS; m++) {
		mounts[m] = zcache_cleancache_init_fs(zc, PAGE);
		CHECK(mounts[m] >= 0, "mount %d: %d", m, mounts[m]);
		for (int j = 0; j < m; j++)
			distinct &= mounts[j] != mounts[m];
		make_page(p, T1 + 0);
		memcpy(p + 8, &m, sizeof(m));
		CHECK_EQ(zcache_cleancache_put_page(zc, mounts[m], inode_key(1), 0, p), 0);
	}
	CHECK(distinct, "two mounts got the same pool id");
	for (int m = 0; m < MOUNTS; m++) {
		int got = -1;
		CHECK_EQ(zcache_cleancache_get_page(zc, mounts[m], inode_key(1), 0, q), 0);
		memcpy(&got, q + 8, sizeof(got));
		CHECK_EQ(got, m);
		CHECK_EQ(zcache_cleancache_invalidate_fs(zc, mounts[m]), 0);
	}
	note("cleancache: %d mounts at once, each with its own pool id\n", MOUNTS);
	teardown_and_check(zc, &h);
	host_destroy(&h);
	return end();
}

/* Shared file systems: one pool per uuid, joined by every mount; gets keep the page. */
int zc_test_shared_fs(void)
{
	begin();
	struct host h;
	host_init(&h);
	struct zcache_config c = config_for(&h);
	zcache_handle_t zc = setup_or_fail(&c);
	struct zcache_uuid u1, u2;
	for (int i = 0; i < 16; i++) {
		u1.b[i] = (uint8_t)(i * 17 + 1);
		u2.b[i] = (uint8_t)(i * 17 + 2);
	}
	CHECK_EQ(zcache_cleancache_init_shared_fs(zc, NULL, PAGE), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_cleancache_init_shared_fs(zc, &u1, 2048), -ZCACHE_EINVAL);
	int a = zcache_cleancache_init_shared_fs(zc, &u1, PAGE);
	int b = zcache_cleancache_init_shared_fs(zc, &u1, PAGE);
	int o = zcache_cleancache_init_shared_fs(zc, &u2, PAGE);
	CHECK(a >= 0 && a == b && o >= 0 && o != a, "shared pools %d %d %d", a, b, o);

	uint8_t p[PAGE], q[PAGE];
	int nput = 0;
	for (uint32_t i = 0; i < 500; i++) {
		make_page(p, 20000 + i);
		int r = zcache_cleancache_put_page(zc, a, inode_key(i / 50), i, p);
		CHECK(r == 0 || r == -ZCACHE_E2BIG, "put %d", r);
		nput += r == 0;
	}
	int hits = 0;
	for (uint32_t i = 0; i < 500; i++) {
		/* Both mounts see the page, and a get does not remove it. */
		int r1 = zcache_cleancache_get_page(zc, b, inode_key(i / 50), i, q);
		CHECK(r1 != 0 || page_is(q, 20000 + i), "shared page %u differs", i);
		int r2 = zcache_cleancache_get_page(zc, a, inode_key(i / 50), i, q);
		CHECK_EQ(r1, r2);
		hits += r1 == 0;
	}
	CHECK_EQ(hits, nput);
	CHECK_EQ(zcache_cleancache_get_page(zc, o, inode_key(0), 0, q), -ZCACHE_ENOENT);
	/* The first mount leaves: the pool stays for the second. */
	CHECK_EQ(zcache_cleancache_invalidate_fs(zc, a), 0);
	int still = 0;
	for (uint32_t i = 0; i < 500; i++)
		still += zcache_cleancache_get_page(zc, b, inode_key(i / 50), i, q) == 0;
	CHECK_EQ(still, nput);
	/* The last mount leaves: the pool is destroyed. */
	CHECK_EQ(zcache_cleancache_invalidate_fs(zc, b), 0);
	CHECK_EQ(zcache_cleancache_get_page(zc, b, inode_key(0), 0, q), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_cleancache_invalidate_fs(zc, a), -ZCACHE_ENXIO);
	CHECK_EQ(stats_of(zc).stored_pages, 0);
	/* A new mount of the same uuid makes a fresh, empty pool. */
	int a2 = zcache_cleancache_init_shared_fs(zc, &u1, PAGE);
	CHECK(a2 >= 0, "remount %d", a2);
	CHECK_EQ(zcache_cleancache_get_page(zc, a2, inode_key(0), 1, q), -ZCACHE_ENOENT);
	note("shared fs: %d pages put through one mount, %d seen by both, kept after the first unmount\n",
	     nput, hits);
	teardown_and_check(zc, &h);
	host_destroy(&h);
	return end();
}

/* frontswap: many pages byte-exact, duplicates (successful and failed), invalidations,
 * swap types, error paths, exclusive loads. */
int zc_test_frontswap(void)
{
	begin();
	struct host h;
	host_init(&h);
	struct zcache_config c = config_for(&h);
	zcache_handle_t zc = setup_or_fail(&c);
	uint8_t p[PAGE], q[PAGE];
	memset(p, 0, PAGE);

	CHECK_EQ(zcache_frontswap_init(zc, 1024), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_frontswap_store(zc, 0, 0, p), -ZCACHE_ENXIO); /* before init */
	CHECK_EQ(zcache_frontswap_init(zc, 0), 0);
	CHECK_EQ(zcache_frontswap_init(zc, 1), 0);

	enum { N = 4000 };
	static signed char stored[N];
	int nstored = 0;
	for (uint32_t i = 0; i < N; i++) {
		uint64_t off = i < N / 2 ? i : (1ULL << 40) + i;
		make_page(p, 40000 + i);
		int r = zcache_frontswap_store(zc, 0, off, p);
		CHECK(r == 0 || r == -ZCACHE_E2BIG, "store %u = %d", i, r);
		stored[i] = r == 0;
		nstored += r == 0;
	}
	struct zcache_stats s = stats_of(zc);
	CHECK_EQ(s.stored_pages, nstored);
	note("frontswap: %d stores, %d kept (%" PRIu64 " frames: %.2f pages per frame)\n", N,
	     nstored, s.pool_frames,
	     s.pool_frames ? (double)(nstored - s.same_filled_pages) / (double)s.pool_frames : 0.0);
	for (int round = 0; round < 2; round++)
		for (uint32_t i = 0; i < N; i++) {
			uint64_t off = i < N / 2 ? i : (1ULL << 40) + i;
			memset(q, 0x5a, PAGE);
			int r = zcache_frontswap_load(zc, 0, off, q);
			if (stored[i]) {
				CHECK(r == 0, "load %u = %d", i, r);
				CHECK(r != 0 || page_is(q, 40000 + i), "swap page %u differs", i);
			} else {
				CHECK_EQ(r, -ZCACHE_ENOENT);
				CHECK(all_bytes(q, 0x5a), "a miss wrote the page");
			}
			/* Another swap type's slot of the same offset is a different slot. */
			if (round == 0 && i % 97 == 0)
				CHECK_EQ(zcache_frontswap_load(zc, 1, off, q), -ZCACHE_ENOENT);
		}

	/* Duplicate store replaces; a failed duplicate store leaves nothing. */
	make_page(p, T1);
	CHECK_EQ(zcache_frontswap_store(zc, 1, 42, p), 0);
	make_page(p, T2);
	CHECK_EQ(zcache_frontswap_store(zc, 1, 42, p), 0);
	CHECK_EQ(zcache_frontswap_load(zc, 1, 42, q), 0);
	CHECK(page_is(q, T2), "duplicate store: old copy returned");
	uint32_t rnd = RND;
	make_page(p, rnd);
	CHECK_EQ(zcache_frontswap_store(zc, 1, 42, p), -ZCACHE_E2BIG);
	CHECK_EQ(zcache_frontswap_load(zc, 1, 42, q), -ZCACHE_ENOENT);

	/* invalidate_page */
	make_page(p, T1);
	CHECK_EQ(zcache_frontswap_store(zc, 1, 43, p), 0);
	CHECK_EQ(zcache_frontswap_invalidate_page(zc, 1, 43), 1);
	CHECK_EQ(zcache_frontswap_invalidate_page(zc, 1, 43), 0);
	CHECK_EQ(zcache_frontswap_load(zc, 1, 43, q), -ZCACHE_ENOENT);

	/* Errors. */
	CHECK_EQ(zcache_frontswap_store(zc, 0, 1, NULL), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_frontswap_load(zc, 0, 1, NULL), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_frontswap_store(zc, 7, 1, p), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_frontswap_load(zc, 7, 1, q), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_frontswap_invalidate_page(zc, 7, 1), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_frontswap_invalidate_area(zc, 7), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_frontswap_store(zc, UINT32_MAX, 1, p), -ZCACHE_ENXIO);

	/* swapoff: everything of type 0 goes; type 0 refuses until the next init. */
	CHECK_EQ(zcache_frontswap_invalidate_area(zc, 0), nstored);
	CHECK_EQ(zcache_frontswap_invalidate_area(zc, 0), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_frontswap_store(zc, 0, 1, p), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_frontswap_load(zc, 0, 1, q), -ZCACHE_ENXIO);
	CHECK_EQ(zcache_frontswap_init(zc, 0), 0);
	CHECK_EQ(zcache_frontswap_load(zc, 0, 1, q), -ZCACHE_ENOENT);
	/* init on a live type empties it. */
	CHECK_EQ(zcache_frontswap_store(zc, 0, 1, p), 0);
	CHECK_EQ(zcache_frontswap_init(zc, 0), 0);
	CHECK_EQ(zcache_frontswap_load(zc, 0, 1, q), -ZCACHE_ENOENT);
	CHECK_EQ(zcache_frontswap_invalidate_area(zc, 1), 0);
	s = stats_of(zc);
	CHECK_EQ(s.stored_pages, 0);
	CHECK_EQ(s.pool_frames, 0);
	teardown_and_check(zc, &h);

	/* Exclusive loads. */
	atomic_store(&h.released, 0);
	c.flags = ZCACHE_FLAG_FRONTSWAP_EXCLUSIVE_LOADS;
	zc = setup_or_fail(&c);
	CHECK_EQ(zcache_frontswap_init(zc, 2), 0);
	make_page(p, T1);
	CHECK_EQ(zcache_frontswap_store(zc, 2, 9, p), 0);
	CHECK_EQ(zcache_frontswap_load(zc, 2, 9, q), 0);
	CHECK(page_is(q, T1), "exclusive load bytes");
	CHECK_EQ(zcache_frontswap_load(zc, 2, 9, q), -ZCACHE_ENOENT);
	CHECK_EQ(stats_of(zc).stored_pages, 0);
	teardown_and_check(zc, &h);
	host_destroy(&h);
	return end();
}

/* The host allocator fails sometimes: stores fail cleanly (-ZCACHE_ENOSPC), never
 * leave stale data, and every stored page still loads byte-exact. */
int zc_test_failing_allocator(void)
{
	begin();
	struct host h;
	host_init(&h);
	uint8_t p[PAGE], q[PAGE];
	const char *names[] = { "every 3rd frame", "after 40 frames", "random 30%" };
	for (int mode = 0; mode < 3; mode++) {
		host_destroy(&h);
		host_init(&h);
		if (mode == 0)
			h.fail_every = 3;
		else if (mode == 1)
			h.fail_after = 40;
		else
			h.fail_permille = 300;
		struct zcache_config c = config_for(&h);
		c.persistent_allocator = mode == 2 ? ZCACHE_ALLOC_ZBUD : ZCACHE_ALLOC_DEFAULT;
		zcache_handle_t zc = setup_or_fail(&c);
		CHECK_EQ(zcache_frontswap_init(zc, 0), 0);
		int pool = zcache_cleancache_init_fs(zc, PAGE);
		CHECK(pool >= 0, "init_fs %d", pool);
		enum { N = 1500 };
		static signed char ok[N], cok[N];
		int nok = 0, nospc = 0, cput = 0;
		for (uint32_t i = 0; i < N; i++) {
			/* Each slot is stored twice with different pages: the second store's
			 * failure must not resurrect the first copy. */
			make_page(p, 60000 + i);
			int r1 = zcache_frontswap_store(zc, 0, i, p);
			make_page(p, 70000 + i);
			int r = zcache_frontswap_store(zc, 0, i, p);
			CHECK(r1 == 0 || r1 == -ZCACHE_ENOSPC || r1 == -ZCACHE_E2BIG, "store %d", r1);
			CHECK(r == 0 || r == -ZCACHE_ENOSPC || r == -ZCACHE_E2BIG, "store %d", r);
			ok[i] = r == 0;
			nok += r == 0;
			nospc += r == -ZCACHE_ENOSPC;
			make_page(p, 80000 + i);
			int rc = zcache_cleancache_put_page(zc, pool, inode_key(i % 7), i, p);
			CHECK(rc == 0 || rc == -ZCACHE_ENOSPC || rc == -ZCACHE_E2BIG, "put %d", rc);
			cok[i] = rc == 0;
			cput += rc == 0;
		}
		/* At 4 KiB some frontswap store always meets a refusal it cannot get around. With
		 * 16 or 64 KiB frames the few stores that need a new frame in mode 0 are served
		 * by evicting cleancache pages (host_alloc_fail below still shows the refusals). */
		CHECK(nospc > 0 || (PAGE > 4096 && mode == 0),
		      "mode %d: no store failed for want of a frame", mode);
		int loaded = 0, got = 0;
		for (uint32_t i = 0; i < N; i++) {
			int r = zcache_frontswap_load(zc, 0, i, q);
			if (ok[i]) {
				CHECK(r == 0, "load %u = %d", i, r);
				CHECK(r != 0 || page_is(q, 70000 + i), "mode %d: page %u differs", mode, i);
				loaded += r == 0;
			} else {
				CHECK(r == -ZCACHE_ENOENT, "failed store %u: load = %d (stale copy?)", i, r);
			}
			int rc = zcache_cleancache_get_page(zc, pool, inode_key(i % 7), i, q);
			/* Cleancache may drop pages (eviction), but never returns wrong bytes. */
			CHECK(rc == 0 || rc == -ZCACHE_ENOENT, "get %d", rc);
			CHECK(rc != 0 || cok[i], "get of a page whose put failed");
			CHECK(rc != 0 || page_is(q, 80000 + i), "mode %d: cleancache page %u differs", mode, i);
			got += rc == 0;
		}
		struct zcache_stats s = stats_of(zc);
		CHECK(s.host_alloc_fail > 0, "host_alloc_fail not counted");
		CHECK_EQ(s.host_alloc_fail, atomic_load(&h.refused));
		CHECK_EQ((long)s.pool_frames, atomic_load(&h.outstanding));
		note("failing allocator (%s): frontswap %d/%d kept (%d -ENOSPC), all %d loaded exact; "
		     "cleancache %d/%d kept, %d got back; %" PRIu64 " host refusals\n",
		     names[mode], nok, N, nospc, loaded, cput, N, got, s.host_alloc_fail);
		teardown_and_check(zc, &h);
	}
	host_destroy(&h);
	return end();
}

/* A frame limit without hysteresis (accept 100 %): cleancache eats its own tail,
 * frontswap steals cleancache pages and then refuses; the limit is never exceeded.
 * (With hysteresis, stores at the limit are refused and the worker reclaims:
 * zc_test_writeback.) */
int zc_test_limits(void)
{
	begin();
	struct host h;
	host_init(&h);
	struct zcache_config c = config_for(&h);
	c.max_frames = 64;
	c.accept_threshold_percent = 100;
	zcache_handle_t zc = setup_or_fail(&c);
	uint8_t p[PAGE], q[PAGE];
	int pool = zcache_cleancache_init_fs(zc, PAGE);
	CHECK(pool >= 0, "init_fs");
	enum { N = 3000 };
	uint64_t peak = 0;
	for (uint32_t i = 0; i < N; i++) {
		make_page(p, 90000 + i);
		int r = zcache_cleancache_put_page(zc, pool, inode_key(i / 100), i, p);
		CHECK(r == 0 || r == -ZCACHE_E2BIG || r == -ZCACHE_ENOSPC, "put %d", r);
		if (i % 50 == 0) {
			struct zcache_stats s = stats_of(zc);
			CHECK(s.pool_frames <= 64, "pool_frames %" PRIu64 " over the limit", s.pool_frames);
			if (s.pool_frames > peak)
				peak = s.pool_frames;
		}
	}
	int hits = 0, wrong = 0;
	for (uint32_t i = 0; i < N; i++) {
		int r = zcache_cleancache_get_page(zc, pool, inode_key(i / 100), i, q);
		CHECK(r == 0 || r == -ZCACHE_ENOENT, "get %d", r);
		if (r == 0) {
			hits++;
			wrong += !page_is(q, 90000 + i);
		}
	}
	CHECK_EQ(wrong, 0);
	struct zcache_stats s = stats_of(zc);
	CHECK(s.eph_ate_tail > 0, "no eviction happened");
	CHECK(s.evicted_eph_pages > 0, "no page evicted");
	CHECK(hits > 0 && hits < N, "hits %d", hits);
	CHECK(s.pool_frames_peak <= 64, "peak %" PRIu64, s.pool_frames_peak);
	note("limit 64 frames, %d cleancache puts: %d got back, %" PRId64 " evicted (%" PRId64
	     " frames), peak %" PRIu64 " frames\n",
	     N, hits, s.evicted_eph_pages, s.evicted_eph_frames, s.pool_frames_peak);

	/* Refill cleancache, then frontswap: it steals cleancache frames, then refuses. */
	for (uint32_t i = 0; i < 600; i++) {
		make_page(p, 95000 + i);
		zcache_cleancache_put_page(zc, pool, inode_key(99), i, p);
	}
	CHECK_EQ(zcache_frontswap_init(zc, 0), 0);
	static signed char ok[N];
	int nok = 0, nospc = 0;
	for (uint32_t i = 0; i < N; i++) {
		make_page(p, 100000 + i);
		int r = zcache_frontswap_store(zc, 0, i, p);
		CHECK(r == 0 || r == -ZCACHE_E2BIG || r == -ZCACHE_ENOSPC, "store %d", r);
		ok[i] = r == 0;
		nok += r == 0;
		nospc += r == -ZCACHE_ENOSPC;
	}
	s = stats_of(zc);
	CHECK(s.pers_ate_eph > 0, "frontswap did not steal cleancache frames");
	CHECK(nospc > 0, "frontswap never hit the limit");
	CHECK(s.pool_limit_hit > 0, "pool_limit_hit not counted");
	CHECK(s.pool_frames_peak <= 64, "peak %" PRIu64, s.pool_frames_peak);
	CHECK_EQ(s.written_back_pages, 0);
	for (uint32_t i = 0; i < N; i++) {
		int r = zcache_frontswap_load(zc, 0, i, q);
		CHECK_EQ(r, ok[i] ? 0 : -ZCACHE_ENOENT);
		CHECK(r != 0 || page_is(q, 100000 + i), "swap page %u differs", i);
	}
	note("then %d frontswap stores: %d kept (persistent pages never dropped), %d -ENOSPC, "
	     "%" PRId64 " cleancache frames stolen, %" PRIu64 " limit hits\n",
	     N, nok, nospc, s.pers_ate_eph, s.pool_limit_hit);
	teardown_and_check(zc, &h);
	host_destroy(&h);
	return end();
}

/* Writeback to the host's swap device: over the limit, the least recently used
 * frontswap pages go to the device; every page comes back exact from zcache or the
 * device. Twice: a device that takes every page, and one that refuses every 7th slot
 * (refused pages stay in zcache). */
int zc_test_writeback(void)
{
	begin();
	for (int mode = 0; mode < 2; mode++) {
		struct host h;
		host_init(&h);
		h.wb_refuse_mod = mode == 0 ? 0 : 7;
		struct zcache_config c = config_for(&h);
		c.max_frames = 32;
		c.writeback_claim = host_wb_claim;
		c.writeback_write = host_wb_write;
		c.writeback_release = host_wb_release;
		zcache_handle_t zc = setup_or_fail(&c);
		uint8_t p[PAGE], q[PAGE];
		CHECK_EQ(zcache_frontswap_init(zc, 0), 0);
		enum { N = 2000 };
		static signed char where[N]; /* 1 zcache, 2 the host wrote it itself */
		int refused_by_zcache = 0, worker_runs = 0;
		for (uint32_t i = 0; i < N; i++) {
			make_page(p, 110000 + i);
			int r = zcache_frontswap_store(zc, 0, i, p);
			CHECK(r == 0 || r == -ZCACHE_E2BIG || r == -ZCACHE_ENOSPC, "store %d", r);
			if (r == 0) {
				where[i] = 1;
			} else {
				/* The kernel writes a refused page to its device itself. */
				CHECK_EQ(device_write(&h, i, p), 0);
				where[i] = 2;
				refused_by_zcache++;
			}
			/* A store never writes back; the host's worker does, when asked. */
			CHECK_EQ(atomic_load(&h.wb_claims), atomic_load(&h.wb_releases));
			if (i % 64 == 63 && zcache_reclaim_wanted(zc) == 1) {
				struct zcache_shrink_result wr;
				int64_t n = zcache_reclaim(zc, 512, &wr);
				CHECK(n >= 0 && (uint64_t)n == wr.evicted_pages + wr.written_back_pages,
				      "reclaim %" PRId64, n);
				worker_runs++;
			}
		}
		CHECK(worker_runs > 0, "the limit never asked for the worker");
		CHECK_EQ(atomic_load(&h.wb_protocol_errors), 0);
		CHECK_EQ(atomic_load(&h.wb_claims), atomic_load(&h.wb_releases));
		CHECK_EQ(zcache_reclaim(zc, 1, (struct zcache_shrink_result *)((char *)&worker_runs + 1)),
			 -ZCACHE_EINVAL);
		struct zcache_stats s = stats_of(zc);
		CHECK(s.written_back_pages > 0, "nothing written back");
		CHECK(mode == 0 || s.writeback_refused > 0, "the device's refusals were not counted");
		CHECK(s.pool_frames_peak <= 32, "peak %" PRIu64, s.pool_frames_peak);
		int from_zcache = 0, from_device = 0;
		for (uint32_t i = 0; i < N; i++) {
			int r = zcache_frontswap_load(zc, 0, i, q);
			const uint8_t *d = host_swapped(&h, i);
			if (r == 0) {
				CHECK(where[i] == 1, "slot %u loaded but its store failed", i);
				CHECK(page_is(q, 110000 + i), "slot %u differs (zcache)", i);
				from_zcache++;
			} else {
				CHECK_EQ(r, -ZCACHE_ENOENT);
				CHECK(d != NULL, "slot %u lost", i);
				if (d) {
					CHECK(page_is(d, 110000 + i), "slot %u differs (device)", i);
					from_device++;
				}
			}
		}
		note("writeback (%s), limit 32 frames: %d stores, %" PRId64
		     " written back by zcache, %" PRId64 " offers refused by the device, %d "
		     "stores refused by zcache; loaded back %d from zcache, %d from the device, "
		     "all exact\n",
		     mode == 0 ? "device takes all" : "device refuses 1 slot in 7", N,
		     s.written_back_pages, s.writeback_refused, refused_by_zcache, from_zcache,
		     from_device);
		/* A shrink to zero writes back everything the device takes. */
		struct zcache_shrink_result sr;
		memset(&sr, 0xff, sizeof(sr));
		int64_t freed = zcache_shrink(zc, 0, &sr);
		CHECK(freed >= 0, "shrink %" PRId64, freed);
		CHECK_EQ((uint64_t)freed, sr.frames_freed);
		s = stats_of(zc);
		if (mode == 0) {
			/* Only same-filled pages (no frame) stay. */
			CHECK_EQ(s.pool_frames, 0);
			CHECK_EQ(s.stored_pages, s.same_filled_pages);
		}
		for (uint32_t i = 0; i < N; i++) {
			int r = zcache_frontswap_load(zc, 0, i, q);
			const uint8_t *d = host_swapped(&h, i);
			if (r == 0)
				CHECK(page_is(q, 110000 + i), "after shrink: slot %u differs", i);
			else
				CHECK(d && page_is(d, 110000 + i), "after shrink: slot %u lost", i);
		}
		note("  shrink(0): %" PRIu64 " frames freed, %" PRIu64 " pages written back; %" PRIu64
		     " frames left\n",
		     sr.frames_freed, sr.written_back_pages, s.pool_frames);
		CHECK_EQ(zcache_shrink(zc, 0, NULL) >= 0, 1);
		CHECK_EQ(zcache_shrink(zc, 0, (struct zcache_shrink_result *)((char *)&sr + 1)),
			 -ZCACHE_EINVAL);
		/* The shrinker pair: what is left is what the device refused. */
		int64_t count = zcache_shrinker_count(zc);
		CHECK(count >= 0, "count %" PRId64, count);
		int64_t scanned = zcache_shrinker_scan(zc, 8);
		CHECK(scanned >= 0 && scanned <= 8 && scanned <= count, "scan %" PRId64, scanned);
		CHECK_EQ(atomic_load(&h.wb_protocol_errors), 0);
		CHECK_EQ(atomic_load(&h.wb_claims), atomic_load(&h.wb_releases));
		teardown_and_check(zc, &h);
		host_destroy(&h);
	}
	return end();
}

/* Stats, compaction and their error paths. */
int zc_test_stats_compact(void)
{
	begin();
	struct host h;
	host_init(&h);
	struct zcache_config c = config_for(&h);
	zcache_handle_t zc = setup_or_fail(&c);
	uint8_t p[PAGE];
	CHECK_EQ(zcache_get_stats(zc, NULL), -ZCACHE_EINVAL);
	uint64_t buf[40];
	CHECK_EQ(zcache_get_stats(zc, (struct zcache_stats *)((char *)buf + 4)), -ZCACHE_EINVAL);
	CHECK_EQ(zcache_frontswap_init(zc, 0), 0);
	for (uint32_t i = 0; i < 2000; i++) {
		make_page(p, 120000 + i);
		zcache_frontswap_store(zc, 0, i, p);
	}
	struct zcache_stats before = stats_of(zc);
	/* Free every other page, then compact. */
	for (uint32_t i = 0; i < 2000; i += 2)
		zcache_frontswap_invalidate_page(zc, 0, i);
	struct zcache_stats mid = stats_of(zc);
	int64_t freed = zcache_compact(zc);
	CHECK(freed >= 0, "compact %" PRId64, freed);
	struct zcache_stats after = stats_of(zc);
	CHECK_EQ(after.pool_frames, mid.pool_frames - (uint64_t)freed);
	CHECK_EQ((long)after.pool_frames, atomic_load(&h.outstanding));
	CHECK(after.zbytes > 0 && after.pool_total_size == after.pool_frames * PAGE, "sizes");
	note("stats: %" PRId64 " pages in %" PRIu64 " frames; half invalidated: %" PRIu64
	     " frames; compaction freed %" PRId64 " -> %" PRIu64 " frames\n",
	     before.stored_pages, before.pool_frames, mid.pool_frames, freed, after.pool_frames);
	teardown_and_check(zc, &h);
	host_destroy(&h);
	return end();
}

/* Corrupt pool memory: every load gives the exact page or -ZCACHE_EIO. */
int zc_test_corruption(void)
{
	begin();
	struct host h;
	host_init(&h);
	struct zcache_config c = config_for(&h);
	zcache_handle_t zc = setup_or_fail(&c);
	uint8_t p[PAGE], q[PAGE];
	int pool = zcache_cleancache_init_fs(zc, PAGE);
	CHECK_EQ(zcache_frontswap_init(zc, 0), 0);
	enum { N = 800 };
	static signed char sok[N], cok[N];
	for (uint32_t i = 0; i < N; i++) {
		make_page(p, 130000 + i);
		sok[i] = zcache_frontswap_store(zc, 0, i, p) == 0;
		cok[i] = zcache_cleancache_put_page(zc, pool, inode_key(5), i, p) == 0;
	}
	/* Flip bits all over every frame the host handed out. */
	pthread_mutex_lock(&h.lock);
	for (size_t f = 0; f < h.nframes; f++) {
		uint8_t *b = h.frames[f];
		for (size_t i = (f * 13) % 61; i < PAGE; i += 61)
			b[i] ^= (uint8_t)(1u << (i % 8));
	}
	size_t corrupted = h.nframes;
	pthread_mutex_unlock(&h.lock);
	int exact = 0, eio = 0;
	for (uint32_t i = 0; i < N; i++) {
		int r = zcache_frontswap_load(zc, 0, i, q);
		if (sok[i]) {
			CHECK(r == 0 || r == -ZCACHE_EIO, "load of a corrupt page = %d", r);
			CHECK(r != 0 || page_is(q, 130000 + i), "corrupt page %u returned as good", i);
		}
		exact += r == 0;
		eio += r == -ZCACHE_EIO;
		r = zcache_cleancache_get_page(zc, pool, inode_key(5), i, q);
		if (cok[i]) {
			CHECK(r == 0 || r == -ZCACHE_EIO, "get of a corrupt page = %d", r);
			CHECK(r != 0 || page_is(q, 130000 + i), "corrupt page %u returned as good", i);
		}
		exact += r == 0;
		eio += r == -ZCACHE_EIO;
	}
	struct zcache_stats s = stats_of(zc);
	CHECK(eio > 0, "no corruption detected");
	/* load_corrupt counts checksum and decompression failures; corruption the
	 * allocator itself detects (a damaged in-slot header) is -EIO too. */
	CHECK(s.load_corrupt > 0 && s.load_corrupt <= eio, "load_corrupt %" PRId64, s.load_corrupt);
	note("corruption: bits flipped in %zu frames; loads: %d exact (same-filled pages live "
	     "outside frames), %d -ZCACHE_EIO, 0 wrong\n",
	     corrupted, exact, eio);
	teardown_and_check(zc, &h);
	host_destroy(&h);
	return end();
}

/* The instance table: independent instances, a full table, reuse. */
int zc_test_instances(void)
{
	begin();
	struct host h;
	host_init(&h);
	struct zcache_config c = config_for(&h);
	c.contexts = 1;
	zcache_handle_t zc[ZCACHE_MAX_INSTANCES];
	for (int i = 0; i < ZCACHE_MAX_INSTANCES; i++)
		zc[i] = setup_or_fail(&c);
	zcache_handle_t extra = 0;
	CHECK_EQ(zcache_setup(&c, &extra), -ZCACHE_ENOSPC);
	CHECK_EQ(extra, 0);
	CHECK_EQ(atomic_load(&h.released), 0);
	/* Instances do not share pages. */
	uint8_t p[PAGE], q[PAGE];
	make_page(p, T1);
	CHECK_EQ(zcache_frontswap_init(zc[0], 0), 0);
	CHECK_EQ(zcache_frontswap_init(zc[1], 0), 0);
	CHECK_EQ(zcache_frontswap_store(zc[0], 0, 3, p), 0);
	CHECK_EQ(zcache_frontswap_load(zc[1], 0, 3, q), -ZCACHE_ENOENT);
	CHECK_EQ(zcache_frontswap_load(zc[0], 0, 3, q), 0);
	/* Free one slot: the next setup takes it with a new handle. */
	CHECK_EQ(zcache_teardown(zc[10]), 0);
	CHECK_EQ(zcache_setup(&c, &extra), 0);
	CHECK(extra != zc[10], "slot reuse kept the handle");
	expect_dead(zc[10]);
	zc[10] = extra;
	for (int i = 0; i < ZCACHE_MAX_INSTANCES; i++)
		CHECK_EQ(zcache_teardown(zc[i]), 0);
	CHECK_EQ(atomic_load(&h.released), ZCACHE_MAX_INSTANCES + 1);
	CHECK_EQ(atomic_load(&h.outstanding), 0);
	note("instances: %d at once, the next setup -ZCACHE_ENOSPC, slot reuse with a new generation\n",
	     ZCACHE_MAX_INSTANCES);
	host_destroy(&h);
	return end();
}

/* Threads: concurrent stores and loads on one instance; then teardown racing calls. */
struct worker {
	zcache_handle_t zc;
	int pool;
	uint32_t id;
	atomic_int *stop;
	long ops, dead;
	int bad;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t p[PAGE], q[PAGE];
	for (uint32_t i = 0; i < 600; i++) {
		uint32_t seed = 200000 + w->id * 10000 + i;
		uint64_t off = (uint64_t)w->id << 32 | i;
		make_page(p, seed);
		int r = zcache_frontswap_store(w->zc, 0, off, p);
		if (r != 0 && r != -ZCACHE_E2BIG)
			w->bad++;
		int l = zcache_frontswap_load(w->zc, 0, off, q);
		if (r == 0 && (l != 0 || !page_is(q, seed)))
			w->bad++;
		int c = zcache_cleancache_put_page(w->zc, w->pool, inode_key(w->id), i, p);
		int g = zcache_cleancache_get_page(w->zc, w->pool, inode_key(w->id), i, q);
		if (g == 0 && !page_is(q, seed))
			w->bad++;
		if (c == 0 && g != 0 && g != -ZCACHE_ENOENT)
			w->bad++;
		if (i % 3 == 0 && zcache_frontswap_invalidate_page(w->zc, 0, off) < 0)
			w->bad++;
		w->ops += 5;
	}
	return NULL;
}

static void *racer_main(void *arg)
{
	struct worker *w = arg;
	uint8_t p[PAGE], q[PAGE];
	int seen_dead = 0;
	for (uint32_t i = 0; !atomic_load(w->stop); i++) {
		make_page(p, 300000 + (i % 512));
		int r = zcache_frontswap_store(w->zc, 0, (uint64_t)w->id << 32 | (i % 512), p);
		int l = zcache_frontswap_load(w->zc, 0, (uint64_t)w->id << 32 | (i % 512), q);
		w->ops += 2;
		if (r == -ZCACHE_ENODEV || l == -ZCACHE_ENODEV) {
			seen_dead = 1;
			w->dead++;
		} else if (seen_dead) {
			w->bad++; /* a dead handle came back to life */
		} else if ((r != 0 && r != -ZCACHE_E2BIG) || (l != 0 && l != -ZCACHE_ENOENT) ||
			   (r == 0 && (l != 0 || !page_is(q, 300000 + (i % 512)))) ||
			   (r != 0 && l == 0)) {
			w->bad++;
		}
		if (seen_dead && w->dead > 1000)
			break;
	}
	return NULL;
}

int zc_test_threads(void)
{
	begin();
	struct host h;
	host_init(&h);
	struct zcache_config c = config_for(&h);
	c.contexts = 4;
	zcache_handle_t zc = setup_or_fail(&c);
	CHECK_EQ(zcache_frontswap_init(zc, 0), 0);
	int pool = zcache_cleancache_init_fs(zc, PAGE);
	enum { T = 4 };
	pthread_t th[T];
	struct worker w[T];
	atomic_int stop = 0;
	for (uint32_t t = 0; t < T; t++) {
		w[t] = (struct worker){ .zc = zc, .pool = pool, .id = t + 1, .stop = &stop };
		CHECK_EQ(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
	}
	long ops = 0;
	for (int t = 0; t < T; t++) {
		pthread_join(th[t], NULL);
		CHECK_EQ(w[t].bad, 0);
		ops += w[t].ops;
	}
	teardown_and_check(zc, &h);
	note("threads: %d threads, %ld calls on one instance, all results consistent\n", T, ops);

	/* Teardown while calls are in flight: never waits, never crashes; the handle dies
	 * for everybody; zcache_reap frees a deferred instance once they are done, in the
	 * host's chosen context (not in the last call in flight). */
	int deferred = 0;
	long dead = 0;
	for (int round = 0; round < 5; round++) {
		atomic_store(&h.released, 0);
		atomic_store(&stop, 0);
		zc = setup_or_fail(&c);
		CHECK_EQ(zcache_frontswap_init(zc, 0), 0);
		for (uint32_t t = 0; t < T; t++) {
			w[t] = (struct worker){ .zc = zc, .id = t + 1, .stop = &stop };
			CHECK_EQ(pthread_create(&th[t], NULL, racer_main, &w[t]), 0);
		}
		/* Let them run a little. */
		for (volatile long spin = 0; spin < 2000000L * (round + 1); spin++)
			;
		int r = zcache_teardown(zc);
		CHECK(r == 0 || r == ZCACHE_TEARDOWN_DEFERRED, "teardown = %d", r);
		deferred += r == ZCACHE_TEARDOWN_DEFERRED;
		for (int t = 0; t < T; t++) {
			pthread_join(th[t], NULL);
			CHECK_EQ(w[t].bad, 0);
			dead += w[t].dead;
		}
		atomic_store(&stop, 1);
		if (r == ZCACHE_TEARDOWN_DEFERRED) {
			/* Every call has returned, yet nothing was freed behind the host's back. */
			CHECK_EQ(atomic_load(&h.released), 0);
			CHECK_EQ(zcache_reap(), 0);
		}
		CHECK_EQ(atomic_load(&h.released), 1);
		CHECK_EQ(atomic_load(&h.outstanding), 0);
		CHECK_EQ(zcache_reap(), 0);
		expect_dead(zc);
	}
	note("teardown racing %d threads, 5 rounds: %d deferred to zcache_reap, "
	     "%ld calls answered -ZCACHE_ENODEV afterwards, every frame returned\n",
	     T, deferred, dead);
	host_destroy(&h);
	return end();
}
