/* Authentication and authorization for the server: the credentials file, the policy file,
 * and the hooks main.c installs on the server (net/server.h). docs/security.md describes the
 * files and the answers.
 *
 * The credentials file holds one key a line, `access_key_id secret_access_key principal`
 * (blank lines and `#` comments ignored); it must not be readable by group or others (mode
 * 0600 or tighter). The policy file is auth/policy.h's JSON. Both are read at open and again
 * on SIGHUP (tr_auth_reload): a reload that fails keeps what was loaded and logs why.
 *
 * Thread safety: the tables are swapped under a lock; authentication runs on the loop,
 * authorization on any thread. Secrets stay in this module: nothing logs them. */
#ifndef TR_AUTH_AUTH_H
#define TR_AUTH_AUTH_H

#include <stddef.h>

#include "net/server.h"

typedef struct tr_auth tr_auth;

/* Loads the files (policy_path may be "" or NULL: every request is then denied). Returns 0
 * or -1 with a message in err ("credentials file x is readable by group or others (mode
 * 0644): chmod 600 x"). */
int tr_auth_open(const char *credentials_path, const char *policy_path, tr_auth **out,
                 char *err, size_t err_len);
void tr_auth_free(tr_auth *a);

/* Reads both files again and swaps them in. Returns 0, or -1 with a message (the old tables
 * stay). Any thread. */
int tr_auth_reload(tr_auth *a, char *err, size_t err_len);

/* Installs the authenticator, the authorizer and the SIGHUP reload on the server. Returns 0
 * or an error. */
int tr_auth_install(tr_auth *a, tr_server *srv);

/* How many keys and principals with policies are loaded. */
size_t tr_auth_key_count(tr_auth *a);
size_t tr_auth_policy_count(tr_auth *a);

/* The authenticator alone, for tests: now_s is the clock. */
tr_auth_verdict tr_auth_check(tr_auth *a, tr_req *req, tr_auth_phase phase, int body_follows,
                              const void *body, size_t len, long long now_s, tr_auth_error *err);

#endif
