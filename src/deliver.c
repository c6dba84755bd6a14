/*
 * deliver.c - Clarity API batches to the Clarity admin API.
 *
 * A batch file (clarity_out.c) holds one operation per line, so delivery
 * reads it line by line and never holds more than one operation.  For each:
 *   1. skip it if the ledger says it was delivered (a restart resumes at the
 *      first operation not yet confirmed, and never re-sends one that was);
 *   2. resolve its "{ID:KEY}" placeholders through GET …/Exists/Key/KEY
 *      (cached for the run; an unknown key fails the operation for good);
 *   3. send it with its Idempotency-Key; success is HTTP 2xx and a body whose
 *      ActionSucceeded is not false;
 *   4. transient failures (no connection, timeout, 408, 429, 5xx) are retried
 *      with exponential back-off and full jitter (Retry-After honoured) up to
 *      max_attempts / max_age_s; anything else fails the operation for good.
 * A batch whose operations all succeeded moves to sent/clarity/ with
 * NAME.responses.ndjson; one with failures goes to error/ with
 * NAME.error.json listing each failed operation's request, response and
 * reason.  If the API stays unreachable the batch waits and the exit status
 * is 75.
 *
 * Authentication: identity (POST /auth/identity, session cookies kept in
 * curl's memory), basic, or oauth2 client credentials (token cached and
 * renewed before it expires; one retry on 401).  Secrets come from the
 * configuration or SAGEBRIDGE_CLARITY_*_FILE and are never logged.
 *
 * libcurl is loaded (dlopen) when a delivery starts, not when sagebridge
 * starts: with what it links (TLS, LDAP, Kerberos, SSH, IDN, ...) it is 26 of
 * the 48 shared libraries, about 10 ms and 3 MB at every start, for the
 * commands (convert, run without batches to deliver, archive) that never
 * speak HTTP (bench/HISTORY.md, session 7).  The header is the same; only
 * the calls go through the table `C`.
 *
 * DIAGNOSTICS
 *	One log line per operation outcome and per batch; exit status as above.
 *	When libcurl cannot be loaded, deliver says so and what to install
 *	(exit status 69), and the batches wait.
 */
#include "deliver.h"

#include <curl/curl.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "config.h"
#include "json.h"
#include "ledger.h"
#include "log.h"
#include "publish.h"

/* libcurl's functions, from the library loaded by curl_load */
static struct {
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    char *(*easy_escape)(CURL *, const char *, int);
    void (*easy_cleanup)(CURL *);
    void (*free)(void *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} C;

#define LIBCURL "libcurl.so.4"

/* curl_load - libcurl into C (once per process); 0, or -1 with err set */
static int curl_load(sbuf *err)
{
    static void *lib;
    if (lib)
        return 0;
    void *h = dlopen(LIBCURL, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        sbuf_printf(err, "cannot load libcurl (%s): %s; install the libcurl4 package", LIBCURL,
                    dlerror());
        return -1;
    }
    static const char *const names[] = {
        "curl_global_init",  "curl_global_cleanup", "curl_easy_init",     "curl_easy_setopt",
        "curl_easy_perform", "curl_easy_getinfo",   "curl_easy_strerror", "curl_easy_escape",
        "curl_easy_cleanup", "curl_free",           "curl_slist_append",  "curl_slist_free_all"};
    void **slot[] = {
        (void **)&C.global_init,   (void **)&C.global_cleanup, (void **)&C.easy_init,
        (void **)&C.easy_setopt,   (void **)&C.easy_perform,   (void **)&C.easy_getinfo,
        (void **)&C.easy_strerror, (void **)&C.easy_escape,    (void **)&C.easy_cleanup,
        (void **)&C.free,          (void **)&C.slist_append,   (void **)&C.slist_free_all};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        /* a function pointer through void *: what POSIX specifies dlsym for */
        *slot[i] = dlsym(h, names[i]);
        if (!*slot[i]) {
            sbuf_printf(err, "%s has no %s: %s; install the libcurl4 package", LIBCURL, names[i],
                        dlerror());
            dlclose(h);
            return -1;
        }
    }
    lib = h;
    return 0;
}
#define EX_OK          0
#define EX_DATAERR     65
#define EX_IOERR       74
#define EX_TEMPFAIL    75
#define EX_UNAVAILABLE 69
#define EX_CONFIG      78

typedef enum { AUTH_NONE, AUTH_IDENTITY, AUTH_BASIC, AUTH_OAUTH2 } auth_mode;

typedef struct {
    char *key, *id;
} id_cache;

typedef struct {
    spool *s;
    ledger *led;
    CURL *c;
    char *base;
    auth_mode auth;
    const char *user, *password, *client_id, *client_secret, *token_url;
    char *token;
    time_t token_expires;
    bool logged_in;
    long timeout_s, connect_timeout_s, max_attempts, max_age_s;
    id_cache *ids;
    int nids;
    sbuf resp;
    char *retry_after;
    int unreachable; /* the API could not be reached: the batch waits */
    int auth_failed;
} dctx;

static size_t on_body(char *p, size_t sz, size_t n, void *u)
{
    sbuf_add(u, p, sz * n);
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *u)
{
    dctx *d = u;
    size_t len = sz * n;
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        free(d->retry_after);
        d->retry_after = strndup(p + 12, len - 12);
    }
    return len;
}

static const char *setting(dctx *d, const char *k)
{
    return cfg_get(spool_config(d->s), "clarity", k);
}

static long num_setting(dctx *d, const char *k, long dflt)
{
    const char *v = setting(d, k);
    return v ? strtol(v, NULL, 10) : dflt;
}

/* request - one HTTP exchange; the body lands in d->resp; returns the HTTP status or 0
 * when no answer came (curl's error in err) */
static long request(dctx *d, const char *method, const char *path, const char *body,
                    const char *idem, const char *ctype, sbuf *err)
{
    CURL *c = d->c;
    sbuf url = {0};
    sbuf_printf(&url, "%s%s", d->base, path);
    sbuf_reset(&d->resp);
    free(d->retry_after);
    d->retry_after = NULL;
    C.easy_setopt(c, CURLOPT_URL, url.p);
    C.easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    C.easy_setopt(c, CURLOPT_POSTFIELDS, body);
    C.easy_setopt(c, CURLOPT_POSTFIELDSIZE, body ? (long)strlen(body) : 0L);
    if (!body)
        C.easy_setopt(c, CURLOPT_HTTPGET, 1L), C.easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    struct curl_slist *h = NULL;
    h = C.slist_append(h, "Accept: application/json");
    sbuf line = {0};
    if (body) {
        sbuf_printf(&line, "Content-Type: %s", ctype ? ctype : "application/json");
        h = C.slist_append(h, line.p);
    }
    if (idem) {
        sbuf_reset(&line);
        sbuf_printf(&line, "Idempotency-Key: %s", idem);
        h = C.slist_append(h, line.p);
    }
    if (d->auth == AUTH_OAUTH2 && d->token) {
        sbuf_reset(&line);
        sbuf_printf(&line, "Authorization: Bearer %s", d->token);
        h = C.slist_append(h, line.p);
    }
    h = C.slist_append(h, "Expect:");
    C.easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = C.easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK)
        C.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        sbuf_printf(err, "%s", C.easy_strerror(rc));
    C.easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    C.slist_free_all(h);
    sbuf_free(&line);
    sbuf_free(&url);
    return status;
}

static void backoff(dctx *d, int attempt);

/* login - identity session or oauth2 token; 0, or an exit status */
static int login(dctx *d)
{
    sbuf err = {0};
    long st = 200;
    if (d->auth == AUTH_IDENTITY) {
        yajl_gen g = yajl_gen_alloc(NULL);
        yajl_gen_map_open(g);
        yajl_gen_string(g, (const unsigned char *)"UserName", 8);
        yajl_gen_string(g, (const unsigned char *)d->user, strlen(d->user));
        yajl_gen_string(g, (const unsigned char *)"Password", 8);
        yajl_gen_string(g, (const unsigned char *)d->password, strlen(d->password));
        yajl_gen_map_close(g);
        const unsigned char *b;
        size_t l;
        yajl_gen_get_buf(g, &b, &l);
        char *body = strndup((const char *)b, l);
        yajl_gen_free(g);
        for (int a = 0; a < d->max_attempts; a++) { /* transient answers are retried here too */
            sbuf_reset(&err);
            st = request(d, "POST", "/auth/identity", body, NULL, NULL, &err);
            if (st != 0 && st != 408 && st != 429 && st < 500)
                break;
            backoff(d, a);
        }
        free(body);
    } else if (d->auth == AUTH_OAUTH2) {
        char *id = C.easy_escape(d->c, d->client_id, 0),
             *sec = C.easy_escape(d->c, d->client_secret, 0);
        sbuf body = {0};
        sbuf_printf(&body, "grant_type=client_credentials&client_id=%s&client_secret=%s", id, sec);
        C.free(id);
        C.free(sec);
        free(d->token);
        d->token = NULL;
        st = request(d, "POST", d->token_url, body.p, NULL, "application/x-www-form-urlencoded",
                     &err);
        sbuf_free(&body);
        if (st >= 200 && st < 300) {
            char eb[128];
            yajl_val v = yajl_tree_parse(sbuf_str(&d->resp), eb, sizeof eb);
            const char *pt[] = {"access_token", NULL}, *pe[] = {"expires_in", NULL};
            yajl_val t = yajl_tree_get(v, pt, yajl_t_string);
            yajl_val e = yajl_tree_get(v, pe, yajl_t_number);
            if (t)
                d->token = xstrdup(YAJL_GET_STRING(t));
            long ttl = e ? strtol(e->u.number.r, NULL, 10) : 300; /* "3600" or "3600.0" */
            if (ttl <= 0)
                ttl = 300;
            /* renewed a minute early (or at half life for short tokens) */
            d->token_expires = time(NULL) + (ttl > 120 ? ttl - 60 : ttl / 2);
            yajl_tree_free(v);
            if (!d->token)
                st = 0;
        }
    }
    int rc = EX_OK;
    if (st == 0 && err.len) {
        log_event(LOG_LVL_WARN, NULL, d->base, "api-unreachable", "error=%s", log_q(err.p));
        d->unreachable = 1;
        rc = EX_TEMPFAIL;
    } else if (st == 401 || st == 403) {
        log_event(LOG_LVL_ERROR, NULL, d->base, "login-refused",
                  "status=%ld advice=\"check [clarity] user/password or client_id/client_secret\"",
                  st);
        d->auth_failed = 1;
        rc = EX_CONFIG;
    } else if (st < 200 || st >= 300) {
        log_event(LOG_LVL_WARN, NULL, d->base, "login-failed", "status=%ld", st);
        d->unreachable = 1;
        rc = EX_TEMPFAIL;
    } else {
        d->logged_in = true;
    }
    sbuf_free(&err);
    return rc;
}

/* action_failed - the CEF body says ActionSucceeded: false */
static bool action_failed(const char *body)
{
    char eb[64];
    yajl_val v = yajl_tree_parse(body, eb, sizeof eb);
    const char *p[] = {"ActionSucceeded", NULL};
    yajl_val a = v && YAJL_IS_OBJECT(v) ? yajl_tree_get(v, p, yajl_t_any) : NULL;
    bool f = a && YAJL_IS_FALSE(a);
    yajl_tree_free(v);
    return f;
}

/* backoff - full jitter: a random wait in [0, min(cap, base * 2^attempt)) */
static void backoff(dctx *d, int attempt)
{
    long ms;
    if (d->retry_after) {
        ms = atol(d->retry_after) * 1000;
    } else {
        long cap = 8000, base = 200;
        long top = base << (attempt < 10 ? attempt : 10);
        if (top > cap)
            top = cap;
        unsigned int r = 0;
        if (getrandom(&r, sizeof r, 0) != sizeof r)
            r = (unsigned int)time(NULL);
        ms = (long)(r % (unsigned int)(top > 0 ? top : 1));
    }
    if (ms > 0)
        usleep((useconds_t)(ms > 60000 ? 60000 : ms) * 1000);
}

/* resolve_id - KEY -> numeric ID through the route's Exists/Key (cached) */
static int resolve_id(dctx *d, const char *key, const char *from, char **id, sbuf *why)
{
    for (int i = 0; i < d->nids; i++)
        if (!strcmp(d->ids[i].key, from)) {
            *id = xstrdup(d->ids[i].id);
            return 0;
        }
    sbuf err = {0}, url = {0};
    /* the key is data: escaped in the URL ("SKU 3", "A/B") */
    size_t fl = strlen(from), kl = strlen(key);
    char *esc = C.easy_escape(d->c, key, (int)kl);
    if (fl >= kl && strcmp(from + fl - kl, key) == 0)
        sbuf_printf(&url, "%.*s%s", (int)(fl - kl), from, esc);
    else
        sbuf_adds(&url, from);
    C.free(esc);
    long st = 0;
    bool relogged = false;
    for (int a = 0; a < d->max_attempts; a++) {
        sbuf_reset(&err);
        st = request(d, "GET", url.p, NULL, NULL, NULL, &err);
        if ((st == 401 || st == 403) && !relogged && d->auth != AUTH_BASIC &&
            d->auth != AUTH_NONE) {
            relogged = true; /* a session or token that expired: log in once more */
            if (login(d) != EX_OK)
                break;
            a--;
            continue;
        }
        if (st != 0 && st != 408 && st != 429 && st < 500)
            break;
        backoff(d, a);
    }
    int rc = -1;
    const char *b = sbuf_str(&d->resp);
    while (*b == ' ' || *b == '\n')
        b++;
    if (st == 0) {
        sbuf_printf(why, "cannot reach the API to resolve %s: %s", key, sbuf_str(&err));
        d->unreachable = 1;
        rc = -2;
    } else if (st == 401 || st == 403 || d->auth_failed) {
        sbuf_printf(why, "the API refused our credentials (HTTP %ld) while resolving %s", st, key);
        d->auth_failed = 1;
        rc = -3;
    } else if (st >= 200 && st < 300 && *b >= '0' && *b <= '9') {
        char *end;
        strtoll(b, &end, 10);
        *id = strndup(b, (size_t)(end - b));
        d->ids = xrealloc(d->ids, (size_t)(d->nids + 1) * sizeof *d->ids);
        d->ids[d->nids++] = (id_cache){xstrdup(from), xstrdup(*id)};
        rc = 0;
    } else {
        sbuf_printf(why, "%s is not known to Clarity (GET %s answered %ld%s%s)", key, url.p, st,
                    *b ? ": " : "", *b ? b : " with no ID");
    }
    sbuf_free(&err);
    sbuf_free(&url);
    return rc;
}

/* substitute - every "{ID:KEY}" string in body becomes the resolved number */
static int substitute(dctx *d, yajl_val resolve, sbuf *body, sbuf *why)
{
    for (size_t i = 0; resolve && YAJL_IS_OBJECT(resolve) && i < resolve->u.object.len; i++) {
        const char *name = resolve->u.object.keys[i]; /* "ID:KEY" */
        const char *pf[] = {"from", NULL};
        yajl_val f = yajl_tree_get(resolve->u.object.values[i], pf, yajl_t_string);
        if (!f)
            continue;
        char *id = NULL;
        const char *key = strchr(name, ':') ? strchr(name, ':') + 1 : name;
        int r = resolve_id(d, key, f->u.string, &id, why);
        if (r != 0)
            return r;
        sbuf ph = {0}, out = {0};
        sbuf_printf(&ph, "\"{%s}\"", name);
        const char *p = body->p;
        for (const char *q; (q = strstr(p, ph.p)) != NULL; p = q + ph.len) {
            sbuf_add(&out, p, (size_t)(q - p));
            sbuf_adds(&out, id);
        }
        sbuf_adds(&out, p);
        sbuf_free(body);
        *body = out;
        sbuf_free(&ph);
        free(id);
    }
    return 0;
}

typedef struct {
    sbuf failed; /* JSON objects of failed operations, joined by ",\n" */
    int nfailed, nsent, nskipped;
} batch_out;

/* send_op - one operation: 0 done, 1 failed for good, 2 API unreachable (stop), 3 auth */
static int send_op(dctx *d, const char *batch, const char *line, batch_out *bo)
{
    char eb[256];
    yajl_val op = yajl_tree_parse(line, eb, sizeof eb);
    if (!op) {
        sbuf_printf(&bo->failed, "%s{\"reason\":\"the operation is not JSON\"}",
                    bo->nfailed++ ? ",\n" : "");
        return 1;
    }
    const char *ps[] = {"seq", NULL}, *pm[] = {"method", NULL}, *pp[] = {"path", NULL},
               *pb[] = {"body", NULL}, *pr[] = {"resolve", NULL}, *pk[] = {"idempotencyKey", NULL};
    yajl_val seqv = yajl_tree_get(op, ps, yajl_t_number);
    int64_t seq = seqv && YAJL_IS_INTEGER(seqv) ? YAJL_GET_INTEGER(seqv) : 0;
    char *state = ledger_delivery_state(d->led, batch, seq);
    if (state && !strcmp(state, "done")) { /* confirmed before a restart: never again */
        free(state);
        yajl_tree_free(op);
        bo->nskipped++;
        return 0;
    }
    free(state);
    const char *method = YAJL_GET_STRING(yajl_tree_get(op, pm, yajl_t_string));
    const char *path = YAJL_GET_STRING(yajl_tree_get(op, pp, yajl_t_string));
    const char *idem = YAJL_GET_STRING(yajl_tree_get(op, pk, yajl_t_string));
    yajl_val bodyv = yajl_tree_get(op, pb, yajl_t_any);
    /* the body as text, re-generated from the tree (numbers keep their text) */
    yajl_gen g = yajl_gen_alloc(NULL);
    json_emit(g, bodyv);
    const unsigned char *gb;
    size_t gl;
    yajl_gen_get_buf(g, &gb, &gl);
    sbuf body = {0}, why = {0}, err = {0};
    sbuf_add(&body, gb, gl);
    yajl_gen_free(g);
    int result = 0;
    long st = 0;
    int attempts = 0;
    int sr = 0;
    if (d->auth == AUTH_OAUTH2 && time(NULL) >= d->token_expires && login(d) != EX_OK)
        sr = d->auth_failed ? -3 : -2; /* renewed before the lookups as well as the send */
    if (sr == 0)
        sr = substitute(d, yajl_tree_get(op, pr, yajl_t_object), &body, &why);
    if (sr == -2) {
        result = 2;
    } else if (sr == -3) {
        result = 3;
    } else if (sr != 0) {
        result = 1;
    } else {
        time_t start = time(NULL);
        bool relogged = false;
        for (;;) {
            if (d->auth == AUTH_OAUTH2 && time(NULL) >= d->token_expires && login(d) != EX_OK) {
                result = d->auth_failed ? 3 : 2;
                break;
            }
            attempts++;
            sbuf_reset(&err);
            st = request(d, method ? method : "POST", path ? path : "/", body.p, idem, NULL, &err);
            if (st == 401 && !relogged && d->auth != AUTH_BASIC && d->auth != AUTH_NONE) {
                relogged = true; /* a session or token that expired: log in once more */
                if (login(d) != EX_OK) {
                    result = d->auth_failed ? 3 : 2;
                    break;
                }
                continue;
            }
            bool transient = st == 0 || st == 408 || st == 429 || st >= 500;
            if (!transient) {
                if (st >= 200 && st < 300 && !action_failed(sbuf_str(&d->resp)))
                    result = 0;
                else {
                    result = st == 401 || st == 403 ? 3 : 1;
                    sbuf_printf(&why, "HTTP %ld%s", st,
                                st >= 200 && st < 300 ? " with ActionSucceeded false" : "");
                }
                break;
            }
            if (attempts >= d->max_attempts || time(NULL) - start >= d->max_age_s) {
                if (st == 0) {
                    sbuf_printf(&why, "the API did not answer: %s", sbuf_str(&err));
                    result = 2;
                } else {
                    sbuf_printf(&why, "HTTP %ld after %d attempts", st, attempts);
                    result = 2; /* still transient: the batch waits for a later run */
                }
                break;
            }
            backoff(d, attempts);
        }
    }
    const char *resp = sbuf_str(&d->resp);
    if (result == 0) {
        ledger_delivery_set(d->led, batch, seq, "done", st, resp, NULL, attempts);
        bo->nsent++;
    } else if (result == 3) {
        log_event(LOG_LVL_ERROR, batch, NULL, "credentials-refused",
                  "seq=%lld advice=\"check [clarity] user/password or client_id/client_secret\"",
                  (long long)seq);
    } else if (result == 1) {
        ledger_delivery_set(d->led, batch, seq, "failed", st, resp, why.p, attempts);
        yajl_gen f = yajl_gen_alloc(NULL);
        yajl_gen_map_open(f);
        yajl_gen_string(f, (const unsigned char *)"seq", 3);
        yajl_gen_integer(f, seq);
        yajl_gen_string(f, (const unsigned char *)"request", 7);
        json_emit(f, op);
        yajl_gen_string(f, (const unsigned char *)"status", 6);
        yajl_gen_integer(f, st);
        yajl_gen_string(f, (const unsigned char *)"response", 8);
        yajl_gen_string(f, (const unsigned char *)resp, strlen(resp));
        yajl_gen_string(f, (const unsigned char *)"reason", 6);
        yajl_gen_string(f, (const unsigned char *)sbuf_str(&why), why.len);
        yajl_gen_map_close(f);
        const unsigned char *fb;
        size_t fl;
        yajl_gen_get_buf(f, &fb, &fl);
        sbuf_printf(&bo->failed, "%s", bo->nfailed++ ? ",\n" : "");
        sbuf_add(&bo->failed, fb, fl);
        yajl_gen_free(f);
        log_event(LOG_LVL_WARN, batch, NULL, "operation-failed", "seq=%lld status=%ld reason=%s",
                  (long long)seq, st, log_q(sbuf_str(&why)));
    }
    if (result == 2)
        d->unreachable = 1;
    sbuf_free(&body);
    sbuf_free(&why);
    sbuf_free(&err);
    yajl_tree_free(op);
    return result;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* write_response - one line of NAME.responses.ndjson (the failed ones are in .error.json) */
static int write_response(void *ctx, int64_t seq, const char *state, long status,
                          const char *response)
{
    if (strcmp(state, "done") != 0)
        return 0;
    sbuf l = {0};
    sbuf_printf(&l, "{\"seq\":%lld,\"state\":\"%s\",\"status\":%ld,\"response\":", (long long)seq,
                state, status);
    char eb[32];
    yajl_val v = response && *response ? yajl_tree_parse(response, eb, sizeof eb) : NULL;
    if (v) /* JSON answers as JSON; anything else as a string */
        sbuf_adds(&l, response);
    else {
        yajl_gen g = yajl_gen_alloc(NULL);
        yajl_gen_string(g, (const unsigned char *)(response ? response : ""),
                        response ? strlen(response) : 0);
        const unsigned char *b;
        size_t bl;
        yajl_gen_get_buf(g, &b, &bl);
        sbuf_add(&l, b, bl);
        yajl_gen_free(g);
    }
    yajl_tree_free(v);
    sbuf_adds(&l, "}\n");
    int rc = of_write(ctx, l.p, l.len);
    sbuf_free(&l);
    return rc;
}

/* deliver_batch - one CLARITY_*.json; 0 sent, 1 moved to error/, 2 waits, 3 auth */
static int deliver_batch(dctx *d, const char *dir, const char *name)
{
    char *path = xmalloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) {
        free(path);
        return 2;
    }
    /* the batch id is the file name without CLARITY_ and .json */
    char batch[256];
    const char *us = strchr(name, '_');
    snprintf(batch, sizeof batch, "%.*s", (int)(strlen(us ? us + 1 : name) - 5),
             us ? us + 1 : name);
    const char *root = spool_path(d->s);
    batch_out bo = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int result = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (strncmp(line, "{\"seq\":", 7) != 0)
            continue; /* the batch's own header and footer lines */
        /* one operation per line; the separating comma ends the line */
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ','))
            line[--n] = '\0';
        int r = send_op(d, batch, line, &bo);
        if (r >= 2) {
            result = r;
            break;
        }
    }
    free(line);
    fclose(f);
    sbuf err = {0};
    if (result == 0) {
        const char *to_dir = bo.nfailed ? "error" : "sent/clarity";
        sbuf td = {0}, to = {0}, rn = {0};
        sbuf_printf(&td, "%s/%s", root, to_dir);
        sbuf_printf(&to, "%s/%s", td.p, name);
        if (bo.nfailed) {
            sbuf en = {0};
            sbuf_printf(&en, "%s.error.json", name);
            ofile *ef = of_open(td.p, en.p, &err);
            if (ef) {
                of_puts(ef, "{\"file\":\"");
                of_puts(ef, name);
                of_puts(ef, "\",\"code\":\"OPERATIONS_FAILED\",\"hint\":\"fix the cause (unknown "
                            "keys, refused data), then `sagebridge requeue NAME`\",\"failed\":[\n");
                of_write(ef, bo.failed.p ? bo.failed.p : "", bo.failed.len);
                of_puts(ef, "\n]}\n");
                of_commit(ef, &err);
            }
            sbuf_free(&en);
        }
        /* every response, from the ledger: it also holds those of a run killed midway */
        sbuf_printf(&rn, "%s.responses.ndjson", name);
        ofile *rf = of_open(td.p, rn.p, &err);
        if (rf) {
            ledger_delivery_each(d->led, batch, write_response, rf);
            of_commit(rf, &err);
        }
        if (rename(path, to.p) == 0)
            fsync_dir(td.p, &err);
        log_event(bo.nfailed ? LOG_LVL_WARN : LOG_LVL_INFO, batch, name,
                  bo.nfailed ? "delivered-with-failures" : "delivered",
                  "sent=%d already=%d failed=%d moved_to=%s", bo.nsent, bo.nskipped, bo.nfailed,
                  to_dir);
        result = bo.nfailed ? 1 : 0;
        sbuf_free(&td);
        sbuf_free(&to);
        sbuf_free(&rn);
    } else {
        log_event(
            LOG_LVL_WARN, batch, name, "delivery-waiting", "sent=%d reason=%s", bo.nsent,
            log_q(result == 3 ? "the API refused our credentials" : "the API is unreachable"));
    }
    sbuf_free(&bo.failed);
    sbuf_free(&err);
    free(path);
    return result;
}

/* pass - every batch waiting in out/clarity/, oldest first */
static int pass(dctx *d)
{
    sbuf dir = {0};
    sbuf_printf(&dir, "%s/out/clarity", spool_path(d->s));
    DIR *dd = opendir(dir.p);
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while (dd && (e = readdir(dd)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        names = xrealloc(names, (size_t)(n + 1) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    if (dd)
        closedir(dd);
    if (n)
        qsort(names, (size_t)n, sizeof *names, cmp_names);
    int rc = EX_OK;
    for (int i = 0; i < n; i++) {
        if (rc == EX_OK || rc == EX_DATAERR) {
            if (!d->logged_in && d->auth != AUTH_NONE && d->auth != AUTH_BASIC) {
                int lr = login(d);
                if (lr != EX_OK) {
                    rc = lr;
                    free(names[i]);
                    continue;
                }
            }
            int r = deliver_batch(d, dir.p, names[i]);
            if (r == 1)
                rc = EX_DATAERR;
            else if (r == 2)
                rc = EX_TEMPFAIL; /* keep the order: later batches wait too */
            else if (r == 3)
                rc = EX_CONFIG;
        }
        free(names[i]);
    }
    free(names);
    sbuf_free(&dir);
    return rc;
}

int deliver_run(spool *s, bool once)
{
    dctx d = {.s = s, .led = spool_ledger(s)};
    const char *url = cfg_get(spool_config(s), "clarity", "url");
    if (!url) {
        fprintf(stderr, "sagebridge: deliver: set [clarity] url (the admin API's base URL) in "
                        "sagebridge.conf or SAGEBRIDGE_CLARITY_URL\n");
        return EX_CONFIG;
    }
    const char *auth = setting(&d, "auth");
    d.auth = !auth || !strcmp(auth, "identity") ? AUTH_IDENTITY
             : !strcmp(auth, "basic")           ? AUTH_BASIC
             : !strcmp(auth, "oauth2")          ? AUTH_OAUTH2
             : !strcmp(auth, "none")            ? AUTH_NONE
                                                : -1;
    if ((int)d.auth < 0) {
        fprintf(stderr,
                "sagebridge: deliver: [clarity] auth = %s: expected identity, basic, "
                "oauth2 or none\n",
                auth);
        return EX_CONFIG;
    }
    d.user = setting(&d, "user");
    d.password = setting(&d, "password");
    d.client_id = setting(&d, "client_id");
    d.client_secret = setting(&d, "client_secret");
    d.token_url = setting(&d, "token_url");
    if (!d.token_url)
        d.token_url = "/oauth/token";
    if ((d.auth == AUTH_IDENTITY || d.auth == AUTH_BASIC) && (!d.user || !d.password)) {
        fprintf(stderr,
                "sagebridge: deliver: auth %s needs [clarity] user and password (or "
                "SAGEBRIDGE_CLARITY_PASSWORD_FILE)\n",
                d.auth == AUTH_BASIC ? "basic" : "identity");
        return EX_CONFIG;
    }
    if (d.auth == AUTH_OAUTH2 && (!d.client_id || !d.client_secret)) {
        fprintf(stderr, "sagebridge: deliver: auth oauth2 needs [clarity] client_id and "
                        "client_secret (or SAGEBRIDGE_CLARITY_CLIENT_SECRET_FILE)\n");
        return EX_CONFIG;
    }
    d.base = xstrdup(url);
    size_t bl = strlen(d.base);
    while (bl && d.base[bl - 1] == '/')
        d.base[--bl] = '\0';
    d.timeout_s = num_setting(&d, "timeout_s", 60);
    d.connect_timeout_s = num_setting(&d, "connect_timeout_s", 10);
    d.max_attempts = num_setting(&d, "max_attempts", 6);
    d.max_age_s = num_setting(&d, "max_age_s", 600);
    if (d.max_attempts < 1)
        d.max_attempts = 1;
    sbuf lerr = {0};
    if (curl_load(&lerr) != 0) {
        log_event(LOG_LVL_ERROR, NULL, d.base, "libcurl-missing", "reason=%s",
                  log_q(sbuf_str(&lerr)));
        fprintf(stderr, "sagebridge: deliver: %s; the batches wait in out/clarity\n",
                sbuf_str(&lerr));
        sbuf_free(&lerr);
        free(d.base);
        return EX_UNAVAILABLE;
    }
    C.global_init(CURL_GLOBAL_DEFAULT);
    d.c = C.easy_init();
    C.easy_setopt(d.c, CURLOPT_WRITEFUNCTION, on_body);
    C.easy_setopt(d.c, CURLOPT_WRITEDATA, &d.resp);
    C.easy_setopt(d.c, CURLOPT_HEADERFUNCTION, on_header);
    C.easy_setopt(d.c, CURLOPT_HEADERDATA, &d);
    C.easy_setopt(d.c, CURLOPT_TIMEOUT, d.timeout_s);
    C.easy_setopt(d.c, CURLOPT_CONNECTTIMEOUT, d.connect_timeout_s);
    C.easy_setopt(d.c, CURLOPT_COOKIEFILE, ""); /* session cookies, in memory only */
    C.easy_setopt(d.c, CURLOPT_NOSIGNAL, 1L);
    C.easy_setopt(d.c, CURLOPT_USERAGENT, "sagebridge");
    const char *ca = setting(&d, "ca_file");
    if (ca)
        C.easy_setopt(d.c, CURLOPT_CAINFO, ca);
    const char *insecure = setting(&d, "insecure");
    if (insecure && !strcmp(insecure, "yes")) {
        log_event(LOG_LVL_WARN, NULL, d.base, "tls-verification-off",
                  "reason=\"[clarity] insecure = yes: for test rigs only\"");
        C.easy_setopt(d.c, CURLOPT_SSL_VERIFYPEER, 0L);
        C.easy_setopt(d.c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (d.auth == AUTH_BASIC) {
        C.easy_setopt(d.c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        C.easy_setopt(d.c, CURLOPT_USERNAME, d.user);
        C.easy_setopt(d.c, CURLOPT_PASSWORD, d.password);
    }
    int rc;
    for (;;) {
        rc = pass(&d);
        if (once || rc == EX_CONFIG)
            break;
        sleep(5); /* the deliver daemon: a pass every few seconds until killed */
    }
    C.easy_cleanup(d.c);
    C.global_cleanup();
    for (int i = 0; i < d.nids; i++) {
        free(d.ids[i].key);
        free(d.ids[i].id);
    }
    free(d.ids);
    free(d.token);
    free(d.base);
    free(d.retry_after);
    sbuf_free(&d.resp);
    return rc;
}
