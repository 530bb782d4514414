#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "net/storecfg.h"
#include "tmpdir.h"
#include "util/config.h"

/* Writes text to dir/name and returns the path in buf. */
static const char *write_file(const char *dir, const char *name, const char *text, char *buf,
                              size_t len) {
    snprintf(buf, len, "%s/%s", dir, name);
    FILE *f = fopen(buf, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static void defaults(void **state) {
    (void)state;
    tr_config c;
    tr_config_defaults(&c);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 4566);
    assert_string_equal(c.data_dir, "./data");
    assert_int_equal(c.log_level, TR_LOG_INFO);
    assert_string_equal(c.tls_cert, "");
    assert_string_equal(c.tls_key, "");
    assert_int_equal(c.fsync, TR_CONFIG_FSYNC_ALWAYS);
    assert_int_equal(c.storage_threads, 1);
    assert_int_equal(c.segment_max_bytes, 128u * 1024 * 1024);
    assert_int_equal(c.segment_max_age_ms, 3600 * 1000);
    assert_int_equal(c.max_request_bytes, 64u * 1024 * 1024);
    assert_int_equal(c.worker_threads, 2);
    char err[256];
    assert_int_equal(tr_config_validate(&c, err, sizeof err), 0);
}

static void set_values(void **state) {
    (void)state;
    tr_config c;
    char err[256];
    tr_config_defaults(&c);
    assert_int_equal(tr_config_set(&c, "listen", "0.0.0.0:8080", err, sizeof err), 0);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 8080);
    assert_int_equal(tr_config_set(&c, "listen", "[::1]:9", err, sizeof err), 0);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 9);
    assert_int_equal(tr_config_set(&c, "segment_max_bytes", "64M", err, sizeof err), 0);
    assert_int_equal(c.segment_max_bytes, 64u * 1024 * 1024);
    assert_int_equal(tr_config_set(&c, "max_request_bytes", "2048", err, sizeof err), 0);
    assert_int_equal(c.max_request_bytes, 2048);
    assert_int_equal(tr_config_set(&c, "fsync", "interval", err, sizeof err), 0);
    assert_int_equal(c.fsync, TR_CONFIG_FSYNC_INTERVAL);
    assert_int_equal(tr_config_set(&c, "log_level", "debug", err, sizeof err), 0);
    assert_int_equal(c.log_level, TR_LOG_DEBUG);
    assert_int_equal(tr_config_set(&c, "worker_threads", "8", err, sizeof err), 0);
    assert_int_equal(c.worker_threads, 8);
}

static void bad_values(void **state) {
    (void)state;
    tr_config c;
    char err[256];
    tr_config_defaults(&c);
    assert_int_equal(tr_config_set(&c, "nope", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown key 'nope'"));
    assert_int_equal(tr_config_set(&c, "listen", "127.0.0.1", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "listen", "127.0.0.1:0", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "listen", "127.0.0.1:70000", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "listen", "::1:80", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "fsync", "sometimes", err, sizeof err), -1);
    assert_non_null(strstr(err, "fsync"));
    assert_int_equal(tr_config_set(&c, "worker_threads", "0", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "worker_threads", "-1", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "worker_threads", "2x", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "segment_max_bytes", "12T", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "log_level", "loud", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "data_dir", "", err, sizeof err), -1);
    /* Failed sets leave the old values. */
    assert_int_equal(c.listen_port, 4566);
    assert_int_equal(c.worker_threads, 2);
}

static void load_file(void **state) {
    (void)state;
    char dir[256], path[512], err[512];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    write_file(dir, "ok.conf",
               "# a comment\n"
               "\n"
               "listen = 127.0.0.1:5000   # trailing comment\n"
               "  data_dir=/var/lib/tributary\n"
               "fsync = interval\n"
               "fsync_interval_ms = 250\n"
               "storage_threads = 4\n",
               path, sizeof path);
    tr_config c;
    tr_config_defaults(&c);
    assert_int_equal(tr_config_load_file(&c, path, err, sizeof err), 0);
    assert_int_equal(c.listen_port, 5000);
    assert_string_equal(c.data_dir, "/var/lib/tributary");
    assert_int_equal(c.fsync, TR_CONFIG_FSYNC_INTERVAL);
    assert_int_equal(c.fsync_interval_ms, 250);
    assert_int_equal(c.storage_threads, 4);

    tr_store_config sc;
    tr_config_fill_store(&c, &sc);
    assert_string_equal(sc.dir, "/var/lib/tributary");
    assert_int_equal(sc.fsync_mode, TR_FSYNC_INTERVAL);
    assert_int_equal(sc.fsync_interval_ms, 250);
    assert_int_equal(sc.storage_threads, 4);
    assert_int_equal(sc.shard.segment_max_bytes, c.segment_max_bytes);
    assert_int_equal(sc.shard.segment_max_age_ms, c.segment_max_age_ms);
    tmpdir_remove(dir);
}

static void file_errors_name_the_line(void **state) {
    (void)state;
    char dir[256], path[512], err[512], want[600];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_config c;

    tr_config_defaults(&c);
    write_file(dir, "unknown.conf", "listen = 127.0.0.1:1\n\nbogus = 3\n", path, sizeof path);
    assert_int_equal(tr_config_load_file(&c, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:3: unknown key 'bogus'", path);
    assert_string_equal(err, want);

    tr_config_defaults(&c);
    write_file(dir, "noeq.conf", "# x\nlisten 127.0.0.1:1\n", path, sizeof path);
    assert_int_equal(tr_config_load_file(&c, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2: ", path);
    assert_memory_equal(err, want, strlen(want));

    tr_config_defaults(&c);
    write_file(dir, "badval.conf", "worker_threads = many\n", path, sizeof path);
    assert_int_equal(tr_config_load_file(&c, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:1: worker_threads", path);
    assert_memory_equal(err, want, strlen(want));

    tr_config_defaults(&c);
    snprintf(path, sizeof path, "%s/missing.conf", dir);
    assert_int_equal(tr_config_load_file(&c, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
    tmpdir_remove(dir);
}

static void data_streams_keys(void **state) {
    (void)state;
    tr_config c;
    char err[256];
    tr_config_defaults(&c);
    assert_int_equal(c.stream_transition_ms, 500);
    assert_int_equal(c.iterator_ttl_ms, 300000);
    assert_int_equal(c.limits_aws, 0);
    assert_int_equal(tr_config_set(&c, "limits", "aws", err, sizeof err), 0);
    assert_int_equal(c.limits_aws, 1);
    assert_int_equal(tr_config_set(&c, "limits", "none", err, sizeof err), 0);
    assert_int_equal(c.limits_aws, 0);
    assert_int_equal(tr_config_set(&c, "limits", "lots", err, sizeof err), -1);
    assert_string_equal(err, "limits: expected none or aws, got 'lots'");
    assert_int_equal(tr_config_set(&c, "stream_transition_ms", "0", err, sizeof err), 0);
    assert_int_equal(c.stream_transition_ms, 0);
    assert_int_equal(tr_config_set(&c, "iterator_ttl_ms", "999", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "iterator_ttl_ms", "2000", err, sizeof err), 0);
    assert_int_equal(c.iterator_ttl_ms, 2000);
}

static void putmedia_idle_keys(void **state) {
    (void)state;
    tr_config c;
    char err[256];
    tr_config_defaults(&c);
    assert_int_equal(c.putmedia_idle_ack_ms, 3000);
    assert_int_equal(c.putmedia_idle_close_ms, 30000);
    assert_int_equal(tr_config_set(&c, "putmedia_idle_ack_ms", "99", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "putmedia_idle_ack_ms", "500", err, sizeof err), 0);
    assert_int_equal(c.putmedia_idle_ack_ms, 500);
    assert_int_equal(tr_config_set(&c, "putmedia_idle_close_ms", "999", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "putmedia_idle_close_ms", "2000", err, sizeof err), 0);
    assert_int_equal(c.putmedia_idle_close_ms, 2000);
}

static void tls_pair(void **state) {
    (void)state;
    tr_config c;
    char err[256];
    tr_config_defaults(&c);
    assert_int_equal(tr_config_set(&c, "tls_cert", "/x.pem", err, sizeof err), 0);
    assert_int_equal(tr_config_validate(&c, err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "tls_key", "/k.pem", err, sizeof err), 0);
    assert_int_equal(tr_config_validate(&c, err, sizeof err), 0);
}

static void public_url(void **state) {
    (void)state;
    tr_config c;
    char err[256], url[TR_CONFIG_PATH_MAX + 16];
    tr_config_defaults(&c);
    assert_string_equal(c.public_url, "");
    tr_config_base_url(&c, url, sizeof url);
    assert_string_equal(url, "http://127.0.0.1:4566");
    assert_int_equal(tr_config_set(&c, "listen", "[::1]:8443", err, sizeof err), 0);
    assert_int_equal(tr_config_set(&c, "tls_cert", "/x.pem", err, sizeof err), 0);
    tr_config_base_url(&c, url, sizeof url);
    assert_string_equal(url, "https://[::1]:8443");
    assert_int_equal(tr_config_set(&c, "public_url", "https://video.example.com/", err, sizeof err), 0);
    tr_config_base_url(&c, url, sizeof url);
    assert_string_equal(url, "https://video.example.com");
    assert_int_equal(tr_config_set(&c, "public_url", "http://10.0.0.2:4566/kvs", err, sizeof err), 0);
    assert_string_equal(c.public_url, "http://10.0.0.2:4566/kvs");
    assert_int_equal(tr_config_set(&c, "public_url", "ftp://x", err, sizeof err), -1);
    assert_non_null(strstr(err, "public_url: expected"));
    assert_int_equal(tr_config_set(&c, "public_url", "http://", err, sizeof err), -1);
    assert_int_equal(tr_config_set(&c, "public_url", "http://a b", err, sizeof err), -1);
    assert_string_equal(c.public_url, "http://10.0.0.2:4566/kvs");
    assert_int_equal(tr_config_set(&c, "public_url", "", err, sizeof err), 0);
    tr_config_base_url(&c, url, sizeof url);
    assert_string_equal(url, "https://[::1]:8443");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(set_values),
        cmocka_unit_test(bad_values),
        cmocka_unit_test(load_file),
        cmocka_unit_test(file_errors_name_the_line),
        cmocka_unit_test(tls_pair),
        cmocka_unit_test(data_streams_keys),
        cmocka_unit_test(putmedia_idle_keys),
        cmocka_unit_test(public_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
