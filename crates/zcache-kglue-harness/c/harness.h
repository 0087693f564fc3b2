/* The C harness's entry points, called from src/lib.rs. Each test returns its number
 * of failed checks; zc_harness_log() gives the last test's notes. */
#ifndef ZCACHE_HARNESS_H
#define ZCACHE_HARNESS_H

const char *zc_harness_log(void);
int zc_test_no_instance(void);
int zc_test_setup_errors(void);
int zc_test_cleancache(void);
int zc_test_shared_fs(void);
int zc_test_frontswap(void);
int zc_test_failing_allocator(void);
int zc_test_limits(void);
int zc_test_writeback(void);
int zc_test_stats_compact(void);
int zc_test_corruption(void);
int zc_test_instances(void);
int zc_test_threads(void);

#endif
