/*
 * spool.c - watch, claim, convert, publish exactly once, archive, recover.
 *
 * The design is Postfix's queue: a folder per state and rename(2) between
 * them, so a file is always wholly in one place.  The life of a Clarity
 * export dropped into in/clarity/NAME:
 *
 *   1. arrival  NAME is complete: not a temp name, size and mtime unchanged
 *               for settle_ms (or it arrived by rename/link), and it ends like
 *               a whole JSON document.
 *   2. claim    open + flock(LOCK_EX) the file, then renameat2(NOREPLACE) it
 *               to work/NAME.  The lock travels with the inode: another
 *               instance, or a recovering one, that cannot take the lock
 *               leaves the file alone; the lock dies with its process.
 *   3. convert  under the ledger's write lock (BEGIN IMMEDIATE): refuse a
 *               content seen before (duplicate), convert into hidden temp
 *               files in out/sage (fsync'ed), record the business keys, and
 *               commit the batch as "converted", then sync the ledger's WAL
 *               (the other commits are not synced one by one: this is the one
 *               a power loss must not take back, since Sage gets the files
 *               next).  Before that commit nothing has happened: a crash
 *               leaves temps that recovery sweeps and an input in work/ that
 *               it converts again.
 *   4. publish  hard-link each temp to work/.BATCH=NAME (the archive reads
 *               those, whatever Sage does with out/sage), rename each temp to
 *               its name, fsync the folder, write PREFIX_BATCH.done last;
 *               commit "published".  Every step checks what is already done,
 *               so recovery simply does it again.
 *   5. archive  under the write lock: manifest with prev = the chain head,
 *               archive/YYYY/MM/DD/BATCH.tar.gz finished and renamed, commit
 *               "archived" with the new head; then archive/CHAIN (replaced
 *               without fsync: repaired at start if a power loss left it
 *               behind).  The archive's temporary was begun at step 3 with the
 *               input, compressed while the input converts (arc_start).
 *   6. cleanup  only now does the input leave work/ (no fsync: a removal a
 *               crash undoes is done again by recovery).  If a power loss
 *               keeps the removal but loses commits 4-5, recovery takes the
 *               input and the outputs back from the archive (restore_input).
 *
 * Small files (up to 1 MiB) taken in one scan go through steps 4 and 5 as a group: each
 * step for every batch of the group, then the one sync that makes it durable, then the
 * next step (group_flush).  The order of each batch's steps, and so what recovery finds
 * after a crash, is the same as for a file finished alone.
 *
 * A file that cannot be converted goes to error/NAME with NAME.error.json;
 * records that fail their checks are listed in error/NAME.rejects.json.
 *
 * DIAGNOSTICS
 *	Events are logged one per line (log.c); functions return an exit
 *	status of sysexits.h to main.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include <csv.h>

#include "archive.h"
#include "sage_in.h"
#include "convert.h"
#include "deliver.h"
#include "digest.h"
#include "json.h"
#include "ledger.h"
#include "log.h"
#include "paths.h"
#include "publish.h"
#include "sage_out.h"
#include "template.h"

#define EX_OK        0
#define EX_DATAERR   65
#define EX_NOINPUT   66
#define EX_SOFTWARE  70
#define EX_CANTCREAT 73
#define EX_IOERR     74
#define EX_CONFIG    78

static const char *const subdirs[] = {"in",           "in/clarity", "in/sage",     "work",
                                      "out",          "out/sage",   "out/clarity", "sent",
                                      "sent/clarity", "hold",       "error",       "archive"};

static const char default_ignore[] = "*.filepart *.part *.tmp .* ~$* *.sbtmp";

/* Batches of small files are published and archived in groups (group_flush): the syncs
 * that order one step before the next (the ledger's WAL, out/sage after the renames and
 * again after the .done markers, the archives' day folder before "archived" is committed)
 * are made once for the group instead of once per batch: 8 fsync-family calls per
 * one-order file become 4 (its two CSVs, its .done, its archive) and 4 per group.
 * Each batch still goes through every step in the same order, so a crash anywhere leaves
 * batches that recovery finishes one by one, as before.  A group is flushed when full,
 * when its oldest batch has waited GROUP_WAIT_MS, before a larger file, and at the end
 * of every scan. */
#define GROUP_MAX      64
#define GROUP_WAIT_MS  100 /* bounds what a steady stream of files adds to the .done latency */
#define GROUP_FILE_MAX (1L << 20) /* larger inputs are finished one by one, as they come */

/* a batch converted and committed, waiting in the group for publication */
typedef struct {
    batch_row b;
    pub_file f[SW_MAX_FILES]; /* its outputs (b.outputs, parsed once) */
    int nf;
    int fd;       /* the claim on work/NAME: its lock keeps other instances' recovery off */
    bool flagged; /* rejected or duplicate records: exit status 65 */
    char *marker; /* the input's NAME.done (done_marker), removed once archived; or NULL */
} pending;

struct spool {
    char *cfg_path;
    config *cfg;
    char *dir, *in_clarity, *in_sage, *work, *out_sage, *out_clarity, *hold, *error, *archive;
    ledger *led;
    tpl_set *tpl;
    long settle_ms, incomplete_s, rescan_s, poll_ms;
    bool poll_mode, done_marker, reject_file, deliver_auto;
    int formats;
    char **ignore;
    int nignore;
    char instance[128];
    hset told;             /* names already reported as symlinks or odd files */
    int worst;             /* exit status of this run */
    const char *replay_of; /* set while a replay runs through process_claimed */
    bool force;            /* replay --force-republish */
    uint64_t processed;
    long archive_level; /* igzip level of archives (0..3) */
    /* the archive of the batch being converted, started with its input (archive_batch
     * adds the rest): compressing the input overlaps the conversion */
    arc_writer *arc;
    char *arc_batch;
    int arc_first; /* members already given to arc: the input, then maybe the outputs */
    /* the chain head archive/CHAIN is to show, not yet written (chain_batch NULL: none) */
    char chain_sha[65];
    char *chain_batch;
    long chain_written_ms;
    /* the group of converted batches (set while a scan runs: grouping) */
    bool grouping;
    pending group[GROUP_MAX];
    int ngroup;
    long group_t0;
    const char *marker_next; /* the marker of the file process_file is on, for group_add */
};

static void chain_flush(spool *s);

/* path_join - "a/b" (malloc'ed) */
static char *path_join(const char *a, const char *b)
{
    sbuf s = {0};
    sbuf_printf(&s, "%s/%s", a, b);
    return s.p;
}

static void worst(spool *s, int rc)
{
    if (rc > s->worst)
        s->worst = rc;
}

/* fault - a test hook: SAGEBRIDGE_CRASH_AT=POINT kills the process there, as kill -9 would */
static void fault(const char *point)
{
    static const char *at;
    static int init;
    if (!init) {
        at = getenv("SAGEBRIDGE_CRASH_AT");
        init = 1;
    }
    if (at && strcmp(at, point) == 0) {
        log_event(LOG_LVL_WARN, NULL, NULL, "crash-injected", "point=%s", point);
        raise(SIGKILL);
    }
}

static const char conf_template[] =
    "# sagebridge.conf - written by `sagebridge init`.  Every key can also be set in the\n"
    "# environment as SAGEBRIDGE_SECTION_KEY (e.g. SAGEBRIDGE_SPOOL_SETTLE_MS=500), which\n"
    "# wins over this file; secrets preferably through SAGEBRIDGE_SECTION_KEY_FILE.\n"
    "\n"
    "# the spool folder (in/, work/, out/, error/, archive/, ledger.db)\n"
    "spool = %s\n"
    "\n"
    "[spool]\n"
    "# a file is taken when its size and mtime have not changed for this long\n"
    "settle_ms = 2000\n"
    "# a JSON file that ends too early is waited for this long, then rejected\n"
    "incomplete_timeout_s = 300\n"
    "# full rescan of the inbound folders, besides inotify\n"
    "rescan_s = 30\n"
    "# inotify (local disks) or poll (NFS/SMB shares, where inotify sees nothing)\n"
    "watch = inotify\n"
    "# with watch = poll: how often to look\n"
    "poll_ms = 1000\n"
    "# yes: take NAME only once NAME.done exists beside it\n"
    "done_marker = no\n"
    "# names never taken (shell patterns): uploads in progress, dot-files, Office locks\n"
    "ignore = %s\n"
    "# skip: publish the good records, list the bad ones in error/NAME.rejects.json;\n"
    "# reject_file: any bad record sends the whole file to error/\n"
    "on_record_error = skip\n"
    "# csv (what Sage's Data Import Manager reads), xml or both\n"
    "formats = csv\n"
    "# gzip level of archive/… (isa-l igzip: 0 fastest .. 3 smallest)\n"
    "archive_level = 1\n"
    "# manual: batches for Clarity wait in out/clarity for `sagebridge deliver`;\n"
    "# auto: run delivers them as it goes\n"
    "deliver = manual\n"
    "# stderr or syslog\n"
    "log = stderr\n"
    "\n"
    "[sage]\n"
    "# TranDate is the order date in this time zone\n"
    "timezone = UTC\n"
    "# CustID when templates/lookups/customers.csv has no row for a customerId\n"
    "default_cust_id = WEBCUST\n"
    "# warehouse when templates/lookups/warehouses.csv has no row for a ship-to state\n"
    "default_warehouse = MAIN\n"
    "\n"
    "[clarity]\n"
    "# the Clarity admin API that `sagebridge deliver` sends batches to\n"
    "# url = https://shop.example.com/DesktopModules/ClarityEcommerce/API-Admin\n"
    "# identity (session login), basic, oauth2 (client credentials) or none\n"
    "auth = identity\n"
    "# user = sagebridge\n"
    "# secrets: better SAGEBRIDGE_CLARITY_PASSWORD_FILE=/etc/sagebridge/password\n"
    "# password =\n"
    "# client_id =\n"
    "# client_secret =\n"
    "# token_url = /oauth/token\n"
    "# a CA bundle for the API's certificate (TLS is always verified)\n"
    "# ca_file = /etc/ssl/certs/ca-certificates.crt\n"
    "timeout_s = 60\n"
    "connect_timeout_s = 10\n"
    "# retries of transient failures (no answer, 408, 429, 5xx), with back-off\n"
    "max_attempts = 6\n"
    "max_age_s = 600\n"
    "# products per bulk inventory operation\n"
    "inventory_chunk = 250\n"
    "\n"
    "[paths]\n"
    "# templates and schemas; default: the folders installed with sagebridge\n"
    "# templates = /etc/sagebridge/templates\n"
    "# xsd = /usr/local/share/sagebridge/xsd\n";

int spool_init(const char *dir, const char *conf_path, sbuf *err)
{
    char abs[PATH_MAX];
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        sbuf_printf(err, "%s: cannot create the spool folder: %s", dir, strerror(errno));
        return EX_CANTCREAT;
    }
    if (!realpath(dir, abs)) {
        sbuf_printf(err, "%s: %s", dir, strerror(errno));
        return EX_CANTCREAT;
    }
    for (size_t i = 0; i < sizeof subdirs / sizeof *subdirs; i++) {
        char *p = path_join(abs, subdirs[i]);
        int rc = mkdir(p, 0750);
        if (rc != 0 && errno != EEXIST) {
            sbuf_printf(err, "%s: cannot create: %s", p, strerror(errno));
            free(p);
            return EX_CANTCREAT;
        }
        free(p);
    }
    char *conf = conf_path ? xstrdup(conf_path) : path_join(abs, "sagebridge.conf");
    if (access(conf, F_OK) == 0) {
        printf("%s exists and was left as it is\n", conf);
    } else {
        FILE *f = fopen(conf, "w");
        if (!f) {
            sbuf_printf(err, "%s: cannot write the configuration: %s", conf, strerror(errno));
            free(conf);
            return EX_CANTCREAT;
        }
        fchmod(fileno(f), 0640);
        fprintf(f, conf_template, abs, default_ignore);
        if (fclose(f) != 0) {
            sbuf_printf(err, "%s: cannot write the configuration: %s", conf, strerror(errno));
            free(conf);
            return EX_CANTCREAT;
        }
        printf("wrote %s\n", conf);
    }
    printf("spool ready in %s\n", abs);
    free(conf);
    return EX_OK;
}

/* setting_long - a number setting with bounds, or an error */
static int setting_long(spool *s, const char *key, long dflt, long min, long max, long *out,
                        sbuf *err)
{
    const char *v = cfg_get(s->cfg, "spool", key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        sbuf_printf(err, "[spool] %s = %s: expected a whole number from %ld to %ld", key, v, min,
                    max);
        return -1;
    }
    *out = n;
    return 0;
}

static int setting_choice(spool *s, const char *key, const char *a, const char *b, bool *is_b,
                          sbuf *err)
{
    const char *v = cfg_get_default(s->cfg, "spool", key, a);
    if (strcmp(v, a) == 0 || strcmp(v, b) == 0) {
        *is_b = strcmp(v, b) == 0;
        return 0;
    }
    sbuf_printf(err, "[spool] %s = %s: expected %s or %s", key, v, a, b);
    return -1;
}

/* load_settings - every [spool] setting, checked; -1 with err */
static int load_settings(spool *s, sbuf *err)
{
    bool b;
    if (setting_long(s, "settle_ms", 2000, 0, 3600000, &s->settle_ms, err) ||
        setting_long(s, "incomplete_timeout_s", 300, 0, 604800, &s->incomplete_s, err) ||
        setting_long(s, "rescan_s", 30, 1, 86400, &s->rescan_s, err) ||
        setting_long(s, "poll_ms", 1000, 10, 3600000, &s->poll_ms, err) ||
        setting_long(s, "archive_level", ARC_LEVEL_DEFAULT, ARC_LEVEL_MIN, ARC_LEVEL_MAX,
                     &s->archive_level, err) ||
        setting_choice(s, "watch", "inotify", "poll", &s->poll_mode, err) ||
        setting_choice(s, "done_marker", "no", "yes", &s->done_marker, err) ||
        setting_choice(s, "on_record_error", "skip", "reject_file", &s->reject_file, err) ||
        setting_choice(s, "deliver", "manual", "auto", &s->deliver_auto, err))
        return -1;
    /* CSV alone by default: the form Sage's import reads (reference/sage500.md §12); the XML
     * form doubles the work and the archive for a reader nobody has confirmed */
    const char *f = cfg_get_default(s->cfg, "spool", "formats", "csv");
    s->formats = !strcmp(f, "csv")    ? SW_CSV
                 : !strcmp(f, "xml")  ? SW_XML
                 : !strcmp(f, "both") ? SW_CSV | SW_XML
                                      : 0;
    if (!s->formats) {
        sbuf_printf(err, "[spool] formats = %s: expected csv, xml or both", f);
        return -1;
    }
    const char *lg = cfg_get_default(s->cfg, "spool", "log", "stderr");
    if (strcmp(lg, "stderr") != 0 && strcmp(lg, "syslog") != 0) {
        sbuf_printf(err, "[spool] log = %s: expected stderr or syslog", lg);
        return -1;
    }
    (void)b;
    log_open(lg);
    const char *ig = cfg_get_default(s->cfg, "spool", "ignore", default_ignore);
    for (int i = 0; i < s->nignore; i++)
        free(s->ignore[i]);
    free(s->ignore);
    s->ignore = NULL;
    s->nignore = 0;
    for (const char *p = ig; *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t,");
        if (!n)
            break;
        s->ignore = xrealloc(s->ignore, (size_t)(s->nignore + 1) * sizeof *s->ignore);
        s->ignore[s->nignore++] = strndup(p, n);
        p += n;
    }
    const char *inst = cfg_get(s->cfg, "spool", "instance");
    if (inst)
        snprintf(s->instance, sizeof s->instance, "%s", inst);
    else if (gethostname(s->instance, sizeof s->instance) != 0)
        snprintf(s->instance, sizeof s->instance, "sagebridge");
    return 0;
}

/* load_templates - the templates folder, into a fresh set */
static tpl_set *load_templates(const config *cfg, sbuf *err)
{
    char *tdir = paths_dir(cfg, "templates");
    char *xdir = paths_dir(cfg, "xsd");
    tpl_set *t = tpl_set_new(cfg, xdir);
    if (tpl_load_dir(t, tdir, err) != 0) {
        tpl_set_free(t);
        t = NULL;
    }
    free(tdir);
    free(xdir);
    return t;
}

spool *spool_open(const char *conf_file, config *cfg, sbuf *err, int *exit_code)
{
    spool *s = xcalloc(1, sizeof *s);
    s->cfg = cfg;
    s->cfg_path = conf_file ? xstrdup(conf_file) : NULL;
    *exit_code = EX_CONFIG;
    /* "spool = DIR" before any section (SPEC §2), or [spool] dir = DIR */
    const char *d = cfg_get(cfg, "", "spool");
    if (!d)
        d = cfg_get(cfg, "spool", "dir");
    if (d && d[0] != '/' && cfg_path(cfg))
        s->dir = path_join(cfg_dir(cfg), d);
    else
        s->dir = xstrdup(d ? d : "spool");
    if (load_settings(s, err) != 0) {
        spool_close(s);
        return NULL;
    }
    struct stat st;
    if (stat(s->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        sbuf_printf(err, "%s: no spool here; create one with `sagebridge init %s`", s->dir, s->dir);
        *exit_code = EX_NOINPUT;
        spool_close(s);
        return NULL;
    }
    s->in_clarity = path_join(s->dir, "in/clarity");
    s->in_sage = path_join(s->dir, "in/sage");
    s->work = path_join(s->dir, "work");
    s->out_sage = path_join(s->dir, "out/sage");
    s->out_clarity = path_join(s->dir, "out/clarity");
    s->hold = path_join(s->dir, "hold");
    s->error = path_join(s->dir, "error");
    s->archive = path_join(s->dir, "archive");
    const char *must[] = {s->in_clarity,  s->in_sage, s->work,  s->out_sage,
                          s->out_clarity, s->hold,    s->error, s->archive};
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        if (stat(must[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            sbuf_printf(err, "%s: missing; repair the spool with `sagebridge init %s`", must[i],
                        s->dir);
            *exit_code = EX_NOINPUT;
            spool_close(s);
            return NULL;
        }
    char *db = path_join(s->dir, "ledger.db");
    s->led = ledger_open(db, err);
    free(db);
    if (!s->led) {
        *exit_code = EX_IOERR;
        spool_close(s);
        return NULL;
    }
    s->tpl = load_templates(cfg, err);
    if (!s->tpl) {
        spool_close(s);
        return NULL;
    }
    *exit_code = EX_OK;
    return s;
}

void spool_close(spool *s)
{
    if (!s)
        return;
    arc_abort(s->arc);
    free(s->arc_batch);
    chain_flush(s);
    ledger_close(s->led);
    tpl_set_free(s->tpl);
    cfg_free(s->cfg);
    for (int i = 0; i < s->nignore; i++)
        free(s->ignore[i]);
    free(s->ignore);
    hset_free(&s->told);
    char *f[] = {s->cfg_path, s->dir,  s->in_clarity, s->in_sage, s->work,
                 s->out_sage, s->hold, s->error,      s->archive, s->out_clarity};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        free(f[i]);
    free(s);
}

/* ------------------------------------------------------------ small helpers */

static void iso_time(time_t t, char *buf, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ignored - a temporary or hidden name that is never taken */
static bool ignored(const spool *s, const char *name)
{
    for (int i = 0; i < s->nignore; i++)
        if (fnmatch(s->ignore[i], name, FNM_PERIOD) == 0 ||
            (s->ignore[i][0] == '.' && name[0] == '.' && fnmatch(s->ignore[i], name, 0) == 0))
            return true;
    /* ProFTPD writes ".in.NAME." and WinSCP "NAME.filepart": covered by the defaults */
    return false;
}

/* tell_once - report an odd entry (symlink, folder, device) once per run */
static void tell_once(spool *s, const char *dir, const char *name, const char *what)
{
    sbuf k = {0};
    sbuf_printf(&k, "%s/%s", dir, name);
    if (hset_add(&s->told, hash_bytes(k.p, k.len)))
        log_event(LOG_LVL_WARN, NULL, k.p, "ignored", "reason=%s", log_q(what));
    sbuf_free(&k);
}

/* json_ends_whole - the last non-blank byte closes a JSON document: ']' or '}' */
static bool json_ends_whole(int fd, off_t size)
{
    char buf[256];
    off_t at = size;
    while (at > 0) {
        size_t want = at > (off_t)sizeof buf ? sizeof buf : (size_t)at;
        ssize_t n = pread(fd, buf, want, at - (off_t)want);
        if (n <= 0)
            return false;
        for (ssize_t i = n - 1; i >= 0; i--) {
            char c = buf[i];
            if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
                continue;
            return c == '}' || c == ']';
        }
        at -= n;
    }
    return false;
}

/* rm_batch_dir - remove work/BATCH.d (of older versions) and what it holds */
static void rm_batch_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = path_join(dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

/* link_path - work/.ID=NAME: the batch's own name for an output's bytes, kept from
 * publication to cleanup for the archive (Sage may take the published file at once).
 * Flat in work/, hidden from the scan of claimed inputs, not in a folder per batch: on
 * ext4 without a journal every freed inode is looked at, and skipped, by each allocation
 * in its group for a minute or more (recently_deleted), and the folder was an inode made
 * and freed per batch.  (Folders work/ID.d/ of older versions are moved to such links at
 * start: migrate_batch_dirs.) */
static void link_path(sbuf *p, const spool *s, const char *id, const char *name)
{
    sbuf_printf(p, "%s/.%s=%s", s->work, id, name);
}

/* is_link_name - NAME is one link_path makes: ".YYYYMMDDTHHMMSSZ-...=..." (a hidden input,
 * should the ignore patterns let one in, is not taken for one and removed) */
static bool is_link_name(const char *name)
{
    if (name[0] != '.' || strlen(name) < 19 || name[9] != 'T' || name[16] != 'Z' ||
        name[17] != '-' || !strchr(name + 18, '='))
        return false;
    for (int i = 1; i < 16; i++)
        if (i != 9 && (name[i] < '0' || name[i] > '9'))
            return false;
    return true;
}

/* ----------------------------------------------------------- ledger hooks */

typedef struct {
    spool *s;
    const char *batch;
    const char *kind;
    /* the smallest and largest TranNo of earlier batches (NULL: none), read before the
     * conversion: a value outside them is not used, and needs no lookup.  Order numbers
     * grow, so that is nearly every value of a new export. */
    char *lo, *hi;
    bool bounded;
} hook_ctx;

static int hook_used(void *ctx, const char *column, const char *v, size_t n)
{
    (void)column;
    hook_ctx *h = ctx;
    if (h->s->replay_of) /* a replay may reuse the numbers of the batch it replays */
        return ledger_tranno_used_by_other(h->s->led, h->kind, v, n, h->s->replay_of) == 1;
    if (h->bounded && (!h->lo || ledger_text_cmp(v, n, h->lo, strlen(h->lo)) < 0 ||
                       ledger_text_cmp(v, n, h->hi, strlen(h->hi)) > 0))
        return 0;
    return ledger_tranno_used(h->s->led, h->kind, v, n) == 1;
}

static uint64_t hook_next(void *ctx, const char *prefix)
{
    hook_ctx *h = ctx;
    sbuf name = {0};
    sbuf_printf(&name, "%s:%s", h->kind, prefix);
    uint64_t v = ledger_next_seq(h->s->led, name.p);
    sbuf_free(&name);
    return v;
}

/* hook_key_of - the ledger's orderId for a TranNo (Sage exports matched back) */
static char *hook_key_of(void *ctx, const char *kind, const char *ref, size_t n)
{
    hook_ctx *h = ctx;
    return ledger_key_by_ref(h->s->led, kind, ref, n);
}

/* hook_accept - a business key is published once (SPEC §3 rule 3) */
static int hook_accept(void *ctx, const template *t, const tpl_result *res, sbuf *why)
{
    hook_ctx *h = ctx;
    if (!res->key.n || tpl_output(t)->nops)
        return 0; /* Sage exports restate the truth (stock, status): sent as often as they come */
    int r = ledger_key_add(h->s->led, h->kind, res->key.p, res->key.n, res->key_ref.p,
                           res->key_ref.n, h->batch);
    if (r < 0) {
        sbuf_printf(why, "ledger: %s", ledger_error(h->s->led));
        return -1;
    }
    if (r == 1 && h->s->force) {
        /* replay --force-republish: recorded in the batch and its manifest */
        char *k = strndup(res->key.p, res->key.n);
        char *tr = strndup(res->key_ref.p, res->key_ref.n);
        int rr = ledger_key_replace(h->s->led, h->kind, k, tr, h->batch);
        log_event(LOG_LVL_WARN, h->batch, NULL, "republished", "key=%s tranno=%s", log_q(k),
                  log_q(tr));
        free(k);
        free(tr);
        return rr < 0 ? -1 : 0;
    }
    if (r == 1) {
        char *k = strndup(res->key.p, res->key.n);
        char *tr = ledger_key_tranno(h->s->led, h->kind, k);
        sbuf_printf(why, "%s was published before (as %s); not published again", k, tr ? tr : "?");
        free(k);
        free(tr);
    }
    return r;
}

/* ------------------------------------------------------- batch bookkeeping */

/* outputs_json / totals_json - what the ledger keeps of a conversion */
static char *outputs_json(const pub_file *f, int n)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_array_open(g);
    for (int i = 0; i < n; i++) {
        yajl_gen_map_open(g);
        yajl_gen_string(g, (const unsigned char *)"name", 4);
        yajl_gen_string(g, (const unsigned char *)f[i].name, strlen(f[i].name));
        yajl_gen_string(g, (const unsigned char *)"sha256", 6);
        yajl_gen_string(g, (const unsigned char *)f[i].sha256, 64);
        yajl_gen_string(g, (const unsigned char *)"size", 4);
        yajl_gen_integer(g, (long long)f[i].size);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    char *r = strndup((const char *)buf, len);
    yajl_gen_free(g);
    return r;
}

static void gen_s(yajl_gen g, const char *s)
{
    if (s)
        yajl_gen_string(g, (const unsigned char *)s, strlen(s));
    else
        yajl_gen_null(g);
}

static char *totals_json(const convert_stats *st)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_map_open(g);
    const tpl_output_desc *o = st->tmpl ? tpl_output(st->tmpl) : NULL;
    for (int c = 0; c < st->ncur; c++) {
        const conv_totals *t = &st->cur[c];
        gen_s(g, t->currency[0] ? t->currency : "-");
        yajl_gen_map_open(g);
        gen_s(g, "orders");
        yajl_gen_integer(g, (long long)t->orders);
        gen_s(g, "lines");
        yajl_gen_integer(g, (long long)t->lines);
        for (int i = 0; o && i < o->ntotals && i < CONV_MAX_TOTALS; i++) {
            char buf[DEC_TEXT_MAX];
            dec_format(t->sums[i], t->sums[i].scale, false, buf, sizeof buf);
            gen_s(g, o->total_names[i]);
            gen_s(g, buf); /* decimal text: exact, never a double */
        }
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    char *r = strndup((const char *)buf, len);
    yajl_gen_free(g);
    return r;
}

/* parse_outputs - the ledger's outputs JSON back into files */
static int parse_outputs(const char *json, pub_file *f, int max)
{
    if (!json)
        return 0;
    char eb[128];
    yajl_val v = yajl_tree_parse(json, eb, sizeof eb);
    int n = 0;
    if (v && YAJL_IS_ARRAY(v))
        for (size_t i = 0; i < v->u.array.len && n < max; i++) {
            yajl_val o = v->u.array.values[i];
            const char *pn[] = {"name", NULL}, *ps[] = {"sha256", NULL}, *pz[] = {"size", NULL};
            yajl_val nm = yajl_tree_get(o, pn, yajl_t_string);
            yajl_val sh = yajl_tree_get(o, ps, yajl_t_string);
            yajl_val sz = yajl_tree_get(o, pz, yajl_t_number);
            const char *name = YAJL_GET_STRING(nm), *sha = YAJL_GET_STRING(sh);
            if (!name || !sha)
                continue;
            snprintf(f[n].name, sizeof f[n].name, "%s", name);
            snprintf(f[n].sha256, sizeof f[n].sha256, "%s", sha);
            f[n].size = sz && YAJL_IS_INTEGER(sz) ? (uint64_t)YAJL_GET_INTEGER(sz) : 0;
            n++;
        }
    yajl_tree_free(v);
    return n;
}

static void gen_kv(yajl_gen g, const char *k, const char *v)
{
    gen_s(g, k);
    gen_s(g, v);
}

static void gen_ki(yajl_gen g, const char *k, long long v)
{
    gen_s(g, k);
    yajl_gen_integer(g, v);
}

static void gen_file(yajl_gen g, const char *name, const char *sha, uint64_t size)
{
    yajl_gen_map_open(g);
    gen_kv(g, "name", name);
    gen_ki(g, "size", (long long)size);
    gen_kv(g, "sha256", sha);
    yajl_gen_map_close(g);
}

/* file_digest - sha256 and size of a file on disk */
static int file_digest(const char *path, char hex[65], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    fstat(fd, &st);
    *size = (uint64_t)st.st_size;
    int rc = sha256_fd(fd, hex);
    close(fd);
    return rc;
}

/* manifest - SPEC §7: everything an accountant needs to trust the batch */
static char *manifest(spool *s, const batch_row *b, const pub_file *f, int n, const char *prev,
                      const char *rejects_path, size_t *len)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_config(g, yajl_gen_indent_string, "  ");
    yajl_gen_map_open(g);
    gen_kv(g, "format", "sagebridge-manifest/1");
    gen_kv(g, "batch", b->id);
    gen_kv(g, "kind", b->kind);
    template *t = b->tmpl ? tpl_find(s->tpl, b->tmpl) : NULL;
    gen_s(g, "template");
    yajl_gen_map_open(g);
    gen_kv(g, "name", b->tmpl);
    gen_kv(g, "sha256", t ? tpl_sha256(t) : NULL);
    yajl_gen_map_close(g);
    gen_kv(g, "instance", s->instance);
    gen_kv(g, "received_at", b->claimed_at);
    gen_kv(g, "processed_at", b->updated_at);
    gen_kv(g, "duplicate_of", b->duplicate_of);
    gen_kv(g, "replay_of", b->replay_of);
    gen_s(g, "force_republish");
    yajl_gen_bool(g, b->forced);
    gen_s(g, "input");
    /* the input's SHA-256 was taken at the claim (b->input_sha256); the file is locked
     * and unchanged since, so only its size is read here */
    char *in = path_join(s->work, b->input_name);
    struct stat ist;
    uint64_t size = stat(in, &ist) == 0 ? (uint64_t)ist.st_size : 0;
    free(in);
    char hex[65] = "";
    gen_file(g, b->input_name, b->input_sha256, size);
    gen_s(g, "outputs");
    yajl_gen_array_open(g);
    for (int i = 0; i < n; i++)
        gen_file(g, f[i].name, f[i].sha256, f[i].size);
    if (rejects_path && file_digest(rejects_path, hex, &size) == 0) {
        const char *rn = strrchr(rejects_path, '/');
        gen_file(g, rn ? rn + 1 : rejects_path, hex, size);
    }
    yajl_gen_array_close(g);
    gen_s(g, "records");
    yajl_gen_map_open(g);
    gen_ki(g, "in", b->records);
    gen_ki(g, "published", b->published);
    gen_ki(g, "rejected", b->rejected);
    gen_ki(g, "duplicate", b->duplicate);
    gen_ki(g, "held", b->held);
    gen_ki(g, "warnings", b->warnings);
    yajl_gen_map_close(g);
    gen_s(g, "control_totals");
    char eb[128];
    yajl_val tv = b->totals ? yajl_tree_parse(b->totals, eb, sizeof eb) : NULL;
    if (tv)
        json_emit(g, tv);
    else {
        yajl_gen_map_open(g);
        yajl_gen_map_close(g);
    }
    yajl_tree_free(tv);
    gen_kv(g, "errors", rejects_path ? "listed in the rejects file of the outputs" : NULL);
    gen_kv(g, "prev", prev);
    yajl_gen_map_close(g);
    const unsigned char *buf;
    yajl_gen_get_buf(g, &buf, len);
    char *r = xmalloc(*len + 1);
    memcpy(r, buf, *len);
    r[*len] = '\0';
    yajl_gen_free(g);
    return r;
}

/* report - the same facts for a person, as text */
static char *report(const batch_row *b, const pub_file *f, int n, size_t *len)
{
    sbuf r = {0};
    sbuf_printf(&r, "sagebridge batch %s\n\n", b->id);
    sbuf_printf(&r, "input      %s (sha256 %s)\n", b->input_name, b->input_sha256);
    sbuf_printf(&r, "kind       %s, template %s\n", b->kind, b->tmpl ? b->tmpl : "-");
    sbuf_printf(&r, "received   %s\nprocessed  %s\n", b->claimed_at, b->updated_at);
    if (b->duplicate_of)
        sbuf_printf(&r,
                    "\nThe same content was processed before as batch %s: nothing was "
                    "published.\n",
                    b->duplicate_of);
    sbuf_printf(&r,
                "\nrecords    %lld in, %lld published, %lld rejected, %lld duplicate, "
                "%lld held, %lld warnings\n",
                (long long)b->records, (long long)b->published, (long long)b->rejected,
                (long long)b->duplicate, (long long)b->held, (long long)b->warnings);
    sbuf_printf(&r, "\ncontrol totals\n");
    char eb[128];
    yajl_val tv = b->totals ? yajl_tree_parse(b->totals, eb, sizeof eb) : NULL;
    if (tv && YAJL_IS_OBJECT(tv))
        for (size_t i = 0; i < tv->u.object.len; i++) {
            sbuf_printf(&r, "  %s:", tv->u.object.keys[i]);
            yajl_val o = tv->u.object.values[i];
            for (size_t k = 0; YAJL_IS_OBJECT(o) && k < o->u.object.len; k++) {
                yajl_val x = o->u.object.values[k];
                sbuf_printf(&r, " %s %s", o->u.object.keys[k],
                            YAJL_IS_STRING(x)   ? YAJL_GET_STRING(x)
                            : YAJL_IS_NUMBER(x) ? YAJL_GET_NUMBER(x)
                                                : "?");
            }
            sbuf_addc(&r, '\n');
        }
    yajl_tree_free(tv);
    sbuf_printf(&r, "\noutputs\n");
    for (int i = 0; i < n; i++)
        sbuf_printf(&r, "  %s  %s  %llu bytes\n", f[i].sha256, f[i].name,
                    (unsigned long long)f[i].size);
    if (b->rejected || b->duplicate)
        sbuf_printf(&r,
                    "\n%lld records were left out; each is listed with its reason in "
                    "%s.rejects.json\n",
                    (long long)b->rejected + (long long)b->duplicate, b->input_name);
    *len = r.len;
    return r.p;
}

static void write_chain(spool *s, const char *sha, const char *batch);
static long now_ms(void);

/* ----------------------------------------------------- finishing a batch */

static void set_updated(batch_row *b, const char *state)
{
    char now[32];
    iso_time(time(NULL), now, sizeof now);
    free(b->updated_at);
    b->updated_at = xstrdup(now);
    free(b->state);
    b->state = xstrdup(state);
}

/* commit_state - one ledger transaction: the batch moves to state */
static int commit_state(spool *s, batch_row *b, const char *state)
{
    set_updated(b, state);
    if (ledger_begin(s->led) != 0 || ledger_batch_update(s->led, b) != 0 ||
        ledger_commit(s->led) != 0) {
        ledger_rollback(s->led);
        log_event(LOG_LVL_ERROR, b->id, b->input_name, "ledger-failed", "error=%s",
                  log_q(ledger_error(s->led)));
        return -1;
    }
    return 0;
}

/* done_name - PREFIX_BATCH.done, the prefix being that of the batch's files (malloc'ed) */
static char *done_name(const batch_row *b, const pub_file *f, int n)
{
    const char *us = n > 0 ? strchr(f[0].name, '_') : NULL;
    if (!us)
        return NULL;
    sbuf d = {0};
    sbuf_printf(&d, "%.*s_%s.done", (int)(us - f[0].name), f[0].name, b->id);
    return d.p;
}

/* out_of - the folder a batch publishes to */
static const char *out_of(const spool *s, const batch_row *b)
{
    return b->out_dir ? b->out_dir : s->out_sage;
}

/* publish_names - step 4 up to the renames: link for the archive, rename into place (the
 * folder not yet synced).  *marker: a .done is due (a Sage batch none of whose files was
 * taken yet: a .done alone, written again after Sage took the batch, would lie). */
static int publish_names(spool *s, const batch_row *b, const pub_file *f, int n, bool *marker)
{
    const char *out = out_of(s, b);
    sbuf err = {0};
    int taken = 0, rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        sbuf tmp = {0}, fin = {0}, lnk = {0};
        sbuf_printf(&tmp, "%s/.%s.sbtmp", out, f[i].name);
        sbuf_printf(&fin, "%s/%s", out, f[i].name);
        link_path(&lnk, s, b->id, f[i].name);
        /* keep our own name for the bytes: Sage may take the published file at once */
        if (link(tmp.p, lnk.p) != 0 && errno != EEXIST && link(fin.p, lnk.p) != 0 &&
            errno != EEXIST && access(lnk.p, F_OK) != 0) {
            log_event(LOG_LVL_ERROR, b->id, f[i].name, "publish-failed",
                      "error=%s reason=\"output lost before publication\"", log_q(strerror(errno)));
            rc = -1;
        }
        sbuf_free(&tmp);
        sbuf_free(&fin);
        sbuf_free(&lnk);
    }
    if (rc == 0)
        fault("after-link");
    for (int i = 0; i < n && rc == 0; i++) {
        int r = publish_rename(out, f[i].name, &err);
        if (r < 0)
            rc = -1;
        taken += r == 1;
        char point[32];
        snprintf(point, sizeof point, "after-rename-%d", i + 1);
        fault(point);
    }
    if (rc != 0 && err.len)
        log_event(LOG_LVL_ERROR, b->id, b->input_name, "publish-failed", "error=%s", log_q(err.p));
    sbuf_free(&err);
    *marker = taken == 0 && n > 0 && strcmp(out, s->out_sage) == 0;
    return rc;
}

/* publish_marker - the rest of step 4, once the renames are durable: PREFIX_BATCH.done,
 * written last, its folder synced unless sync_dir is false (the caller syncs it once for a
 * group of batches) */
static int publish_marker(spool *s, const batch_row *b, const pub_file *f, int n, bool sync_dir)
{
    sbuf err = {0};
    int rc = 0;
    char *done = done_name(b, f, n);
    if (done)
        rc = publish_done(out_of(s, b), f, n, done, sync_dir, &err);
    free(done);
    if (rc != 0)
        log_event(LOG_LVL_ERROR, b->id, b->input_name, "publish-failed", "error=%s",
                  log_q(sbuf_str(&err)));
    sbuf_free(&err);
    return rc;
}

/* sync_out - fsync a batch's folder after its renames; 0, or -1 (logged) */
static int sync_out(const char *dir, const batch_row *b)
{
    sbuf err = {0};
    int rc = fsync_dir(dir, &err);
    if (rc != 0)
        log_event(LOG_LVL_ERROR, b->id, b->input_name, "publish-failed", "error=%s", log_q(err.p));
    sbuf_free(&err);
    return rc;
}

/* publish - step 4 for one batch: link for the archive, rename into place, .done last */
static int publish(spool *s, batch_row *b, const pub_file *f, int n)
{
    bool marker = false;
    int rc = publish_names(s, b, f, n, &marker);
    if (rc == 0)
        rc = sync_out(out_of(s, b), b);
    if (rc == 0 && marker)
        rc = publish_marker(s, b, f, n, true);
    if (rc == 0)
        fault("after-done");
    return rc;
}

/* arc_drop - forget the archive started at conversion, if it was not used */
static void arc_drop(spool *s)
{
    arc_abort(s->arc);
    s->arc = NULL;
    free(s->arc_batch);
    s->arc_batch = NULL;
}

/* arc_start - begin the batch's archive with its input, compressed in the background while
 * the input is converted (under the write lock: no recovery sweeps the temporary meanwhile;
 * afterwards the batch is unfinished in the ledger, and sweeps keep its temporaries).  A
 * failure here only costs the overlap: archive_batch starts over and reports it. */
static void arc_start(spool *s, const char *id, time_t claimed, const char *name, const char *path)
{
    arc_drop(s);
    sbuf err = {0}, member = {0};
    sbuf_printf(&member, "input/%s", name);
    s->arc = arc_begin(s->archive, id, claimed, claimed, (int)s->archive_level, &err);
    if (s->arc && arc_add_bg(s->arc, member.p, path, &err) != 0)
        arc_drop(s);
    if (s->arc) {
        s->arc_batch = xstrdup(id);
        s->arc_first = 1;
    }
    sbuf_free(&err);
    sbuf_free(&member);
}

/* arc_outputs - the converted batch's outputs join its archive in the background, from their
 * temporaries (opened now: publication renames them, Sage may take them), while step 4
 * publishes.  A failure only costs the overlap: archive_batch starts over and reports it. */
static void arc_outputs(spool *s, const batch_row *b, const pub_file *f, int n)
{
    if (!s->arc || !s->arc_batch || strcmp(s->arc_batch, b->id) != 0 || s->arc_first != 1)
        return;
    const char *out = b->out_dir ? b->out_dir : s->out_sage;
    char **names = xcalloc((size_t)n + 1, sizeof *names);
    char **paths = xcalloc((size_t)n + 1, sizeof *paths);
    for (int i = 0; i < n; i++) {
        sbuf mn = {0}, mp = {0};
        sbuf_printf(&mn, "output/%s", f[i].name);
        sbuf_printf(&mp, "%s/.%s.sbtmp", out, f[i].name);
        names[i] = mn.p;
        paths[i] = mp.p;
    }
    sbuf err = {0};
    if (arc_add_files_bg(s->arc, (const char *const *)names, (const char *const *)paths, n, &err) ==
        0)
        s->arc_first = 1 + n;
    else
        arc_drop(s);
    for (int i = 0; i < n; i++) {
        free(names[i]);
        free(paths[i]);
    }
    free(names);
    free(paths);
    sbuf_free(&err);
}

/* archive_batch - step 5, under the ledger's write lock so that the chain has one head.
 * grouped: inside the caller's transaction, which it commits once it has synced the
 * archive's folder (left unsynced here); then a failure of the ledger returns -2 (the
 * transaction is spoilt: the caller rolls it back), other failures -1. */
static int archive_batch(spool *s, batch_row *b, const pub_file *f, int n, bool grouped)
{
    if (!grouped && ledger_begin(s->led) != 0) {
        log_event(LOG_LVL_ERROR, b->id, b->input_name, "ledger-failed", "error=%s",
                  log_q(ledger_error(s->led)));
        return -1;
    }
    const char *h = ledger_meta(s->led, "chain_head");
    char *prev = h ? xstrdup(h) : NULL;
    char *rejects = path_join(s->error, b->input_name);
    sbuf rj = {0};
    sbuf_printf(&rj, "%s.rejects.json", rejects);
    free(rejects);
    bool have_rejects = (b->rejected || b->duplicate) && access(rj.p, R_OK) == 0;
    /* the .done marker is published too: archived and listed like the others */
    pub_file all[SW_MAX_FILES + 1];
    int na = n;
    memcpy(all, f, (size_t)n * sizeof *f);
    sbuf done = {0};
    char *dn = !b->out_dir || strcmp(b->out_dir, s->out_sage) == 0 ? done_name(b, f, n) : NULL;
    if (dn) {
        for (int i = 0; i < n; i++)
            sbuf_printf(&done, "%s  %s\n", f[i].sha256, f[i].name);
        snprintf(all[na].name, sizeof all[na].name, "%s", dn);
        sha256_hex(done.p, done.len, all[na].sha256);
        all[na++].size = done.len;
    }
    size_t mlen, rlen;
    char *man = manifest(s, b, all, na, prev, have_rejects ? rj.p : NULL, &mlen);
    char *rep = report(b, all, na, &rlen);
    arc_member *m = xcalloc((size_t)n + 6, sizeof *m);
    int k = 0;
    sbuf names = {0};
    char *in_path = path_join(s->work, b->input_name);
    char **owned = xcalloc((size_t)n * 2 + 4, sizeof *owned);
    int no = 0;
    sbuf mi = {0};
    sbuf_printf(&mi, "input/%s", b->input_name);
    owned[no++] = mi.p;
    m[k++] = (arc_member){mi.p, in_path, NULL, 0};
    for (int i = 0; i < n; i++) {
        sbuf mn = {0}, mp = {0};
        sbuf_printf(&mn, "output/%s", f[i].name);
        link_path(&mp, s, b->id, f[i].name);
        owned[no++] = mn.p;
        owned[no++] = mp.p;
        m[k++] = (arc_member){mn.p, mp.p, NULL, 0};
    }
    sbuf dm = {0};
    if (dn) {
        sbuf_printf(&dm, "output/%s", dn);
        m[k++] = (arc_member){dm.p, NULL, done.p, done.len};
    }
    sbuf rjm = {0};
    if (have_rejects) {
        sbuf_printf(&rjm, "output/%s.rejects.json", b->input_name);
        m[k++] = (arc_member){rjm.p, rj.p, NULL, 0};
    }
    m[k++] = (arc_member){"manifest.json", NULL, man, mlen};
    m[k++] = (arc_member){"report.txt", NULL, rep, rlen};
    sbuf_free(&names);
    struct tm tm = {0};
    time_t claimed = time(NULL);
    if (b->claimed_at && strptime(b->claimed_at, "%Y-%m-%dT%H:%M:%SZ", &tm))
        claimed = timegm(&tm);
    char *rel = NULL;
    sbuf err = {0};
    int first = 0; /* members already in the archive */
    arc_writer *w = NULL;
    if (s->arc && s->arc_batch && strcmp(s->arc_batch, b->id) == 0) {
        w = s->arc; /* started at conversion, with the input (and the outputs) in it */
        first = s->arc_first;
    } else {
        arc_drop(s);
        w = arc_begin(s->archive, b->id, claimed, claimed, (int)s->archive_level, &err);
    }
    s->arc = NULL;
    int rc = w ? 0 : -1;
    for (int i = first; rc == 0 && i < k; i++)
        if (arc_add(w, &m[i], &err) != 0) {
            arc_abort(w);
            w = NULL;
            rc = -1;
        }
    if (w)
        rc = arc_commit(w, &rel, !grouped, &err);
    arc_drop(s);
    if (rc == 0)
        fault("after-archive-written");
    char msha[65] = "";
    if (rc == 0) {
        sha256_hex(man, mlen, msha);
        free(b->archive);
        b->archive = xstrdup(rel);
        free(b->manifest_sha256);
        b->manifest_sha256 = xstrdup(msha);
        free(b->prev);
        b->prev = prev ? xstrdup(prev) : NULL;
        free(b->state);
        b->state = xstrdup(B_ARCHIVED);
        if (ledger_batch_update(s->led, b) != 0 ||
            ledger_set_meta(s->led, "chain_head", msha) != 0 ||
            ledger_set_meta(s->led, "chain_batch", b->id) != 0 ||
            (!grouped && ledger_commit(s->led) != 0)) {
            sbuf_printf(&err, "ledger: %s", ledger_error(s->led));
            rc = grouped ? -2 : -1;
        }
    }
    if (rc != 0) {
        if (!grouped)
            ledger_rollback(s->led);
        log_event(LOG_LVL_ERROR, b->id, b->input_name, "archive-failed", "error=%s",
                  log_q(sbuf_str(&err)));
    } else if (!grouped) {
        fault("after-archived");
        write_chain(s, msha, b->id);
        log_event(LOG_LVL_INFO, b->id, b->input_name, "archived", "archive=%s manifest=%s",
                  log_q(rel), msha);
    }
    for (int i = 0; i < no; i++)
        free(owned[i]);
    free(owned);
    free(in_path);
    sbuf_free(&rjm);
    sbuf_free(&dm);
    sbuf_free(&done);
    free(dn);
    sbuf_free(&rj);
    sbuf_free(&err);
    free(m);
    free(man);
    free(rep);
    free(rel);
    free(prev);
    return rc;
}

/* cleanup - step 6: the input and the links leave work/ (fd: our claim, or -1) */
static void cleanup(spool *s, const batch_row *b, int fd)
{
    char *in = path_join(s->work, b->input_name);
    struct stat a, c;
    /* only the file this batch claimed: a newer file of the same name may be there */
    if (fd >= 0 && fstat(fd, &a) == 0 && stat(in, &c) == 0 && a.st_ino == c.st_ino &&
        a.st_dev == c.st_dev)
        unlink(in);
    free(in);
    fault("after-cleanup-input");
    pub_file f[SW_MAX_FILES];
    int n = parse_outputs(b->outputs, f, SW_MAX_FILES);
    sbuf lnk = {0};
    for (int i = 0; i < n; i++) {
        sbuf_reset(&lnk);
        link_path(&lnk, s, b->id, f[i].name);
        unlink(lnk.p);
    }
    sbuf_free(&lnk);
    /* No fsync of work/ here: the batch is archived and committed, so if a crash undoes the
     * removal, recovery finds the input in work/ with its archived batch in the ledger, checks
     * its SHA-256 and removes it again (recover, "archived but not yet removed").  Making the
     * removal durable at once would cost a journal commit per file for nothing; the next
     * fsync of the cycle carries it anyway. */
}

/* mark_published - commit "published" and say so; 0, or -1 (logged) */
static int mark_published(spool *s, batch_row *b, int nfiles)
{
    if (commit_state(s, b, B_PUBLISHED) != 0)
        return -1;
    log_event(LOG_LVL_INFO, b->id, b->input_name, "published",
              "records=%lld published=%lld rejected=%lld duplicate=%lld files=%d",
              (long long)b->records, (long long)b->published, (long long)b->rejected,
              (long long)b->duplicate, nfiles);
    fault("after-published");
    return 0;
}

/* log_unsynced - a conversion committed whose WAL sync failed: nothing is published on it */
static void log_unsynced(spool *s, const char *id, const char *name)
{
    log_event(LOG_LVL_ERROR, id, name, "ledger-failed",
              "error=%s action=\"nothing published; the next start finishes the batch\"",
              log_q(ledger_error(s->led)));
}

/* finish_batch - from whatever state the ledger has, on to archived and clean */
static int finish_batch(spool *s, batch_row *b, int fd)
{
    pub_file f[SW_MAX_FILES];
    int n = parse_outputs(b->outputs, f, SW_MAX_FILES);
    if (strcmp(b->state, B_CONVERTED) == 0) {
        if (publish(s, b, f, n) != 0 || mark_published(s, b, n) != 0)
            return EX_IOERR;
    }
    if (strcmp(b->state, B_PUBLISHED) == 0 && archive_batch(s, b, f, n, false) != 0)
        return EX_IOERR;
    if (strcmp(b->state, B_ARCHIVED) == 0)
        cleanup(s, b, fd);
    return EX_OK;
}

/* log_converted - the "converted" event, once the batch's commit is durable */
static void log_converted(const batch_row *b)
{
    log_event(LOG_LVL_INFO, b->id, b->input_name, "converted",
              "template=%s records=%lld written=%lld rejected=%lld duplicate=%lld", b->tmpl,
              (long long)b->records, (long long)b->published, (long long)b->rejected,
              (long long)b->duplicate);
}

/* group_archive - step 5 for the published batches of a group (st[i] == 0), in one ledger
 * transaction: each archive written, synced and renamed, its day folder synced once for
 * all, then "archived" committed for all (the input leaves work/ only after that commit,
 * so the folder's sync must come first).  A failure sets st[i] to -1 (logged). */
static void group_archive(spool *s, pending *g, int n, int *st)
{
    int due = 0;
    for (int i = 0; i < n; i++)
        due += st[i] == 0;
    if (!due)
        return;
    if (ledger_begin(s->led) != 0) {
        for (int i = 0; i < n; i++)
            if (st[i] == 0) {
                log_event(LOG_LVL_ERROR, g[i].b.id, g[i].b.input_name, "ledger-failed", "error=%s",
                          log_q(ledger_error(s->led)));
                st[i] = -1;
            }
        return;
    }
    char *dirs[GROUP_MAX];
    int nd = 0;
    bool spoilt = false;
    sbuf err = {0};
    for (int i = 0; i < n && !spoilt; i++) {
        if (st[i] != 0)
            continue;
        st[i] = archive_batch(s, &g[i].b, g[i].f, g[i].nf, true);
        spoilt = st[i] == -2;
        if (spoilt)
            sbuf_printf(&err, "ledger: %s (at batch %s)", ledger_error(s->led), g[i].b.id);
        if (st[i] != 0)
            continue;
        char *d = path_join(s->archive, g[i].b.archive);
        *strrchr(d, '/') = '\0'; /* archive/YYYY/MM/DD */
        bool seen = false;
        for (int j = 0; j < nd && !seen; j++)
            seen = strcmp(dirs[j], d) == 0;
        if (seen)
            free(d);
        else
            dirs[nd++] = d;
    }
    for (int j = 0; j < nd; j++) {
        if (!spoilt && !err.len && fsync_dir(dirs[j], &err) != 0)
            spoilt = true;
        free(dirs[j]);
    }
    if (!spoilt && ledger_commit(s->led) != 0) {
        sbuf_printf(&err, "ledger: %s", ledger_error(s->led));
        spoilt = true;
    }
    const char *head = NULL, *head_batch = NULL;
    if (spoilt)
        ledger_rollback(s->led);
    for (int i = 0; i < n; i++) {
        if (st[i] != 0)
            continue;
        batch_row *b = &g[i].b;
        if (spoilt) {
            if (err.len)
                log_event(LOG_LVL_ERROR, b->id, b->input_name, "archive-failed", "error=%s",
                          log_q(err.p));
            st[i] = -1;
            continue;
        }
        fault("after-archived");
        log_event(LOG_LVL_INFO, b->id, b->input_name, "archived", "archive=%s manifest=%s",
                  log_q(b->archive), b->manifest_sha256);
        head = b->manifest_sha256;
        head_batch = b->id;
    }
    for (int i = 0; i < n; i++)
        if (st[i] == -2)
            st[i] = -1;
    if (head)
        write_chain(s, head, head_batch);
    sbuf_free(&err);
}

/* group_flush - publish and archive the batches of the group, in the order they came.
 * The steps of SPEC §3 rule 4, each for every batch before the next step of any:
 *   1. sync the ledger's WAL: every conversion committed is durable;
 *   2. link and rename each batch's outputs, then sync each output folder once;
 *   3. write each .done, then sync the folders again; commit each "published";
 *   4. archive each (archive_batch: its own syncs, then "archived"), clean up.
 * A failure leaves that batch where it is (recovery finishes it at the next start) and
 * the others go on. */
static void group_flush(spool *s)
{
    int n = s->ngroup;
    if (n == 0)
        return;
    s->ngroup = 0;
    pending *g = s->group;
    int st[GROUP_MAX]; /* 0: on its way; -1: stopped (logged) */
    bool marker[GROUP_MAX], sync_sage = false, sync_ops = false;
    int synced = ledger_sync(s->led);
    for (int i = 0; i < n; i++) {
        st[i] = 0;
        marker[i] = false;
        batch_row *b = &g[i].b;
        if (strcmp(b->state, B_CONVERTED) != 0)
            continue; /* a duplicate input: committed as published, only archived */
        if (synced != 0) {
            log_unsynced(s, b->id, b->input_name);
            st[i] = -1;
            continue;
        }
        fault("after-converted");
        log_converted(b);
        st[i] = publish_names(s, b, g[i].f, g[i].nf, &marker[i]);
        if (st[i] == 0) {
            sync_sage |= strcmp(out_of(s, b), s->out_sage) == 0;
            sync_ops |= strcmp(out_of(s, b), s->out_sage) != 0;
        }
    }
    /* the renames durable before any .done names them (a failed fsync is not tried again:
     * Linux reports a lost write to one fsync only) */
    sbuf es = {0}, eo = {0};
    int rs = sync_sage ? fsync_dir(s->out_sage, &es) : 0;
    int ro = sync_ops ? fsync_dir(s->out_clarity, &eo) : 0;
    sync_sage = false;
    for (int i = 0; i < n; i++) {
        batch_row *b = &g[i].b;
        if (st[i] != 0 || strcmp(b->state, B_CONVERTED) != 0)
            continue;
        bool sage = strcmp(out_of(s, b), s->out_sage) == 0;
        if ((sage ? rs : ro) != 0) {
            log_event(LOG_LVL_ERROR, b->id, b->input_name, "publish-failed", "error=%s",
                      log_q(sbuf_str(sage ? &es : &eo)));
            st[i] = -1;
        } else if (marker[i]) {
            st[i] = publish_marker(s, b, g[i].f, g[i].nf, false);
            sync_sage |= st[i] == 0;
        }
    }
    sbuf_reset(&es);
    if (sync_sage && fsync_dir(s->out_sage, &es) != 0)
        for (int i = 0; i < n; i++)
            if (st[i] == 0 && marker[i]) {
                log_event(LOG_LVL_ERROR, g[i].b.id, g[i].b.input_name, "publish-failed", "error=%s",
                          log_q(sbuf_str(&es)));
                st[i] = -1;
            }
    sbuf_free(&es);
    sbuf_free(&eo);
    for (int i = 0; i < n; i++) {
        batch_row *b = &g[i].b;
        if (st[i] == 0 && strcmp(b->state, B_CONVERTED) == 0) {
            fault("after-done");
            st[i] = mark_published(s, b, g[i].nf);
        }
    }
    group_archive(s, g, n, st);
    for (int i = 0; i < n; i++) {
        batch_row *b = &g[i].b;
        if (st[i] == 0) {
            cleanup(s, b, g[i].fd);
            if (g[i].marker)
                unlink(g[i].marker); /* the marker has served: the batch is archived */
            if (g[i].flagged)
                worst(s, EX_DATAERR);
        } else {
            worst(s, EX_IOERR);
        }
        close(g[i].fd); /* releases the claim */
        batch_row_free(b);
        free(g[i].marker);
    }
}

/* group_add - a committed batch joins the group (which takes over b and fd) */
static void group_add(spool *s, batch_row *b, int fd, bool flagged)
{
    if (s->ngroup == GROUP_MAX)
        group_flush(s);
    if (s->ngroup == 0)
        s->group_t0 = now_ms();
    pending *e = &s->group[s->ngroup++];
    e->nf = parse_outputs(b->outputs, e->f, SW_MAX_FILES);
    e->b = *b;
    memset(b, 0, sizeof *b);
    e->fd = fd;
    e->flagged = flagged;
    e->marker = s->marker_next ? xstrdup(s->marker_next) : NULL;
}

/* ------------------------------------------------------- a file's batch */

/* what became of a file: finished, put back to wait, left alone, or in the group (which
 * holds its claim until the group is flushed) */
enum { DONE_OK, DONE_WAIT, DONE_SKIP, DONE_PENDING };

/* unique_in - a name not yet used in dir: NAME, NAME.1, NAME.2 … (malloc'ed) */
static char *unique_in(const char *dir, const char *name)
{
    sbuf p = {0};
    for (int i = 0;; i++) {
        sbuf_reset(&p);
        if (i)
            sbuf_printf(&p, "%s.%d", name, i);
        else
            sbuf_adds(&p, name);
        char *full = path_join(dir, p.p);
        sbuf e = {0};
        sbuf_printf(&e, "%s.error.json", full);
        int free_name = access(full, F_OK) != 0 && access(e.p, F_OK) != 0;
        free(full);
        sbuf_free(&e);
        if (free_name)
            return p.p;
    }
}

/* reject_input - SPEC §3 rule 5: the input, unchanged, to error/ with a reason beside it */
static int reject_input(spool *s, const char *name, const char *sha, const char *kind,
                        const char *claimed_iso, uint64_t line, const char *code,
                        const char *message, const char *hint)
{
    char *ename = unique_in(s->error, name);
    sbuf en = {0}, err = {0};
    sbuf_printf(&en, "%s.error.json", ename);
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_map_open(g);
    gen_kv(g, "file", name);
    gen_kv(g, "sha256", sha);
    gen_kv(g, "received_at", claimed_iso);
    gen_kv(g, "kind", kind);
    gen_s(g, "errors");
    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    gen_s(g, "record");
    yajl_gen_null(g);
    gen_s(g, "line");
    if (line)
        yajl_gen_integer(g, (long long)line);
    else
        yajl_gen_null(g);
    gen_kv(g, "field", "");
    gen_kv(g, "code", code);
    gen_kv(g, "message", message);
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
    gen_kv(g, "hint", hint);
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    ofile *f = of_open(s->error, en.p, &err);
    int rc = f ? of_write(f, buf, len) : -1;
    if (f)
        rc = of_commit(f, &err) || rc;
    yajl_gen_free(g);
    char *from = path_join(s->work, name), *to = path_join(s->error, ename);
    if (rc == 0 && renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) != 0) {
        sbuf_printf(&err, "%s: %s", to, strerror(errno));
        rc = -1;
    }
    if (rc == 0)
        fsync_dir(s->error, &err);
    if (rc == 0) {
        char id[160];
        snprintf(id, sizeof id, "rejected-%s-%.8s-%ld", claimed_iso, sha, (long)getpid());
        batch_row b = {.id = id,
                       .kind = (char *)kind,
                       .input_name = (char *)name,
                       .input_sha256 = (char *)sha,
                       .state = B_REJECTED,
                       .claimed_at = (char *)claimed_iso,
                       .updated_at = (char *)claimed_iso,
                       .error = (char *)message};
        if (ledger_begin(s->led) != 0 || ledger_batch_insert(s->led, &b) != 0 ||
            ledger_file_seen(s->led, sha, name, 0, B_REJECTED, id) != 0 ||
            ledger_commit(s->led) != 0)
            ledger_rollback(s->led); /* the file and its reason are in error/ all the same */
    }
    if (rc == 0)
        log_event(LOG_LVL_WARN, NULL, name, "rejected", "code=%s reason=%s moved_to=%s", code,
                  log_q(message), log_q(to));
    else
        log_event(LOG_LVL_ERROR, NULL, name, "reject-failed", "error=%s", log_q(sbuf_str(&err)));
    free(from);
    free(to);
    free(ename);
    sbuf_free(&en);
    sbuf_free(&err);
    worst(s, rc == 0 ? EX_DATAERR : EX_IOERR);
    return rc == 0 ? DONE_OK : DONE_SKIP;
}

/* batch_id - YYYYMMDDTHHMMSSZ-KIND-XXXXXXXX (SPEC §7), made unique if two share a second */
static char *batch_id(spool *s, time_t claimed, const char *kind, const char *sha)
{
    struct tm tm;
    gmtime_r(&claimed, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    sbuf id = {0};
    for (int i = 1;; i++) {
        sbuf_reset(&id);
        sbuf_printf(&id, "%s-%s-%.8s", ts, kind, sha);
        if (i > 1)
            sbuf_printf(&id, "-%d", i);
        batch_row b;
        if (ledger_batch_get(s->led, id.p, &b) != 0)
            return id.p;
        batch_row_free(&b);
    }
}

/* unstage - remove the temporary outputs of a conversion that is not committed */
static void unstage(spool *s, const convert_stats *st)
{
    for (int i = 0; i < st->nfiles; i++) {
        sbuf t = {0};
        sbuf_printf(&t, "%s/.%s.sbtmp", s->out_sage, st->files[i].name);
        unlink(t.p);
        sbuf_reset(&t);
        sbuf_printf(&t, "%s/.%s.sbtmp", s->out_clarity, st->files[i].name);
        unlink(t.p);
        sbuf_free(&t);
    }
}

/* process_claimed - steps 3 to 6 for work/NAME, claimed (and locked through fd) */
static int process_claimed(spool *s, const char *name, int fd, time_t claimed, const char *origin)
{
    char sha[65], claimed_iso[32];
    iso_time(claimed, claimed_iso, sizeof claimed_iso);
    if (!origin) { /* recovery: where the file came from, by its kind */
        size_t l = strlen(name);
        origin = l > 4 && strcasecmp(name + l - 4, ".csv") == 0 ? s->in_sage : s->in_clarity;
    }
    char *path = path_join(s->work, name);
    struct stat st;
    fstat(fd, &st);
    /* a small input joins the scan's group; a larger one is finished on its own, after the
     * group (archives are chained in the order the inputs were taken) */
    bool grouped = s->grouping && st.st_size <= GROUP_FILE_MAX;
    if (!grouped || (s->ngroup && now_ms() - s->group_t0 >= GROUP_WAIT_MS))
        group_flush(s);
    if (sha256_fd(fd, sha) != 0) {
        log_event(LOG_LVL_ERROR, NULL, name, "read-failed", "error=%s", log_q(strerror(errno)));
        free(path);
        worst(s, EX_IOERR);
        return DONE_SKIP;
    }
    sbuf why = {0};
    const template *t = convert_sniff(s->tpl, NULL, path, &why);
    const char *kind = t ? tpl_kind(t) : "unknown";
    char *id = NULL;
    int result = DONE_OK;
    if (ledger_begin(s->led) != 0) {
        log_event(LOG_LVL_ERROR, NULL, name, "ledger-failed", "error=%s",
                  log_q(ledger_error(s->led)));
        worst(s, EX_IOERR);
        result = DONE_SKIP;
        goto out;
    }
    /* chosen under the write lock: another instance may be taking an id of this second */
    id = batch_id(s, claimed, kind, sha);
    char *dup = s->replay_of ? NULL : ledger_seen_sha(s->led, sha); /* a replay is asked for */
    batch_row b = {.id = id,
                   .kind = xstrdup(kind),
                   .input_name = xstrdup(name),
                   .input_sha256 = xstrdup(sha),
                   .claimed_at = xstrdup(claimed_iso),
                   .out_dir = xstrdup(s->out_sage)};
    b.id = xstrdup(id);
    b.replay_of = s->replay_of ? xstrdup(s->replay_of) : NULL;
    b.forced = s->force;
    if (dup) {
        /* exactly once by content: recorded and archived, not published */
        b.duplicate_of = dup;
        set_updated(&b, B_PUBLISHED);
        if (ledger_batch_insert(s->led, &b) != 0 ||
            ledger_file_seen(s->led, sha, name, st.st_size, "duplicate", id) != 0 ||
            ledger_commit(s->led) != 0) {
            log_event(LOG_LVL_ERROR, id, name, "ledger-failed", "error=%s",
                      log_q(ledger_error(s->led)));
            ledger_rollback(s->led);
            worst(s, EX_IOERR);
            result = DONE_SKIP;
        } else {
            log_event(LOG_LVL_WARN, id, name, "duplicate", "same_as=%s sha256=%s", dup, sha);
            if (grouped) {
                group_add(s, &b, fd, false);
                result = DONE_PENDING;
            } else {
                worst(s, finish_batch(s, &b, fd));
            }
        }
        batch_row_free(&b);
        goto out;
    }
    hook_ctx hc = {s, id, kind, NULL, NULL, false};
    /* under the write lock: no other batch adds a TranNo before this one commits */
    hc.bounded = ledger_tranno_bounds(s->led, kind, &hc.lo, &hc.hi) == 0;
    tpl_hooks hooks = {hook_used, hook_next, hook_key_of, &hc};
    sbuf rname = {0};
    sbuf_printf(&rname, "%s.rejects.json", name);
    convert_opts o = {.templates = s->tpl,
                      .outdir = s->out_sage,
                      .outdir_ops = s->out_clarity,
                      .created_at = claimed_iso,
                      .source_sha = sha,
                      .formats = s->formats,
                      .batch = id,
                      .stage = true,
                      .rejects_dir = s->error,
                      .rejects_name = rname.p,
                      .display_name = name,
                      .hooks = &hooks,
                      .accept = hook_accept,
                      .accept_ctx = &hc};
    convert_stats cs;
    if (!grouped) /* a small input's archive is written at once, after publication */
        arc_start(s, id, claimed, name, path);
    int rc = convert_file(&o, path, &cs);
    fault("after-convert");
    bool young = time(NULL) - st.st_mtime < s->incomplete_s;
    if (cs.cin == CIN_TRUNCATED && young) {
        /* maybe still arriving (an SFTP client that writes out of order): put it back */
        ledger_rollback(s->led);
        unstage(s, &cs);
        char *rj = path_join(s->error, rname.p);
        unlink(rj);
        free(rj);
        char *back = path_join(origin ? origin : s->in_clarity, name);
        if (renameat2(AT_FDCWD, path, AT_FDCWD, back, RENAME_NOREPLACE) == 0)
            log_event(LOG_LVL_INFO, NULL, name, "waiting", "reason=%s",
                      log_q("the file ends too early; waiting for the rest"));
        free(back);
        result = DONE_WAIT;
    } else if (rc == EX_CANTCREAT || rc == EX_IOERR) {
        /* our failure (a full disk), not the input's: it goes back to wait for a retry */
        ledger_rollback(s->led);
        unstage(s, &cs);
        char *back = path_join(origin ? origin : s->in_clarity, name);
        if (renameat2(AT_FDCWD, path, AT_FDCWD, back, RENAME_NOREPLACE) != 0)
            log_event(LOG_LVL_ERROR, NULL, name, "requeue-failed",
                      "error=%s left_in=work/ (recovered at the next start)",
                      log_q(strerror(errno)));
        log_event(LOG_LVL_ERROR, NULL, name, "output-failed",
                  "status=%d action=\"input put back; retried at the next scan\"", rc);
        free(back);
        worst(s, rc);
        result = DONE_SKIP;
    } else if (cs.cin != CIN_OK || !cs.tmpl || (rc != 0 && rc != EX_DATAERR) ||
               (s->reject_file && cs.rejected > 0)) {
        ledger_rollback(s->led);
        unstage(s, &cs);
        const char *code = cs.cin == CIN_TRUNCATED ? "INCOMPLETE"
                           : cs.cin != CIN_OK      ? "NOT_JSON"
                           : !cs.tmpl              ? "NO_TEMPLATE"
                           : cs.rejected           ? "RECORDS_REJECTED"
                                                   : "CONVERT_FAILED";
        sbuf msg = {0};
        if (cs.cin != CIN_OK)
            sbuf_adds(&msg, cs.cin_msg);
        else if (!cs.tmpl)
            sbuf_printf(&msg, "no template recognises these records (%s)", sbuf_str(&why));
        else if (cs.rejected)
            sbuf_printf(&msg,
                        "%llu of %llu records failed their checks (on_record_error = "
                        "reject_file); they are listed in %s",
                        (unsigned long long)cs.rejected, (unsigned long long)cs.records, rname.p);
        else
            sbuf_printf(&msg, "conversion failed with status %d", rc);
        const char *hint = cs.cin == CIN_TRUNCATED
                               ? "the file stayed incomplete; upload it again in full"
                           : cs.cin != CIN_OK ? "fix or re-export the file, then `sagebridge "
                                                "requeue NAME`"
                           : !cs.tmpl ? "add or choose a template in templates/, then requeue"
                                      : "fix the records at the source, or the template, then "
                                        "`sagebridge requeue NAME`";
        result = reject_input(s, name, sha, kind, claimed_iso, cs.cin != CIN_OK ? cs.cin_line : 0,
                              code, msg.p, hint);
        sbuf_free(&msg);
    } else {
        b.tmpl = xstrdup(tpl_name(cs.tmpl));
        if (tpl_output(cs.tmpl)->nops) {
            free(b.out_dir);
            b.out_dir = xstrdup(s->out_clarity);
        }
        b.records = (int64_t)cs.records;
        b.published = (int64_t)cs.written;
        b.rejected = (int64_t)cs.rejected;
        b.duplicate = (int64_t)cs.duplicates;
        b.warnings = (int64_t)cs.warnings;
        b.outputs = outputs_json(cs.files, cs.nfiles);
        b.totals = totals_json(&cs);
        set_updated(&b, B_CONVERTED);
        if (ledger_batch_insert(s->led, &b) != 0 ||
            ledger_file_seen(s->led, sha, name, st.st_size, "processed", id) != 0 ||
            ledger_commit(s->led) != 0) {
            log_event(LOG_LVL_ERROR, id, name, "ledger-failed", "error=%s",
                      log_q(ledger_error(s->led)));
            ledger_rollback(s->led);
            unstage(s, &cs);
            worst(s, EX_IOERR);
            result = DONE_SKIP;
        } else if (grouped) {
            group_add(s, &b, fd, cs.rejected || cs.duplicates); /* synced and published there */
            s->processed++;
            result = DONE_PENDING;
        } else if (ledger_sync(s->led) != 0) {
            /* committed but perhaps not durable: nothing is published on it; the batch stays
             * converted, and recovery (which syncs first) publishes it at the next start */
            log_unsynced(s, id, name);
            worst(s, EX_IOERR);
            result = DONE_SKIP;
        } else {
            /* durable now: the outputs are published next, and Sage must never get a batch
             * whose business keys a power loss could make the ledger forget (SPEC §3 rules 3
             * and 4; synchronous=NORMAL alone does not sync a commit) */
            fault("after-converted");
            log_converted(&b);
            arc_outputs(s, &b, cs.files, cs.nfiles);
            worst(s, finish_batch(s, &b, fd));
            if (cs.rejected || cs.duplicates)
                worst(s, EX_DATAERR);
            s->processed++;
        }
    }
    batch_row_free(&b);
    sbuf_free(&rname);
    free(hc.lo);
    free(hc.hi);
out:
    arc_drop(s); /* not archived (waiting, rejected, failed): its temporary goes */
    sbuf_free(&why);
    free(id);
    free(path);
    return result;
}

/* process_file - steps 1 and 2 for in/clarity/NAME or in/sage/NAME */
static int process_file(spool *s, const char *dir, const char *name)
{
    char *path = path_join(dir, name);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int result = DONE_SKIP;
    struct stat a, b;
    if (fd < 0) {
        if (errno == ELOOP)
            tell_once(s, dir, name, "a symbolic link (not followed)");
        goto out;
    }
    if (fstat(fd, &a) != 0 || !S_ISREG(a.st_mode)) {
        tell_once(s, dir, name, "not a regular file");
        goto out;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) /* another instance has it */
        goto out;
    if (stat(path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
        goto out; /* claimed by someone else between our open and our lock */
    /* content completeness (SPEC §3 rule 1): a JSON document closes; a CSV's last line
     * ends (one that never does is taken as it is once it stopped changing) */
    bool whole = dir == s->in_sage ? sin_tail_state(fd) == 0 : json_ends_whole(fd, a.st_size);
    if (!whole && time(NULL) - a.st_mtime < s->incomplete_s) {
        result = DONE_WAIT;
        goto out;
    }
    char *to = path_join(s->work, name);
    int rc = renameat2(AT_FDCWD, path, AT_FDCWD, to, RENAME_NOREPLACE);
    free(to);
    if (rc != 0) {
        if (errno == EEXIST)
            log_event(LOG_LVL_WARN, NULL, name, "claim-deferred",
                      "reason=\"a file of this name is still in work/\"");
        else
            log_event(LOG_LVL_ERROR, NULL, name, "claim-failed", "error=%s",
                      log_q(strerror(errno)));
        result = DONE_WAIT;
        goto out;
    }
    log_event(LOG_LVL_INFO, NULL, name, "claimed", "size=%lld", (long long)a.st_size);
    fault("after-claim");
    result = process_claimed(s, name, fd, time(NULL), dir);
out:
    if (fd >= 0 && result != DONE_PENDING)
        close(fd); /* releases the lock (a batch in the group keeps it until flushed) */
    free(path);
    return result;
}

/* ------------------------------------------------------------- recovery */

/* sweep_temps - remove hidden temporaries that no committed batch owns */
static void sweep_temps(spool *s, const char *dir, char **keep, int nkeep)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] != '.' || l < 7 || strcmp(e->d_name + l - 6, ".sbtmp") != 0)
            continue;
        bool owned = false;
        for (int i = 0; i < nkeep && !owned; i++)
            owned = strstr(e->d_name, keep[i]) != NULL;
        if (owned)
            continue;
        char *p = path_join(dir, e->d_name);
        if (unlink(p) == 0)
            log_event(LOG_LVL_INFO, NULL, p, "temp-removed", "reason=%s",
                      log_q("left by an interrupted run"));
        free(p);
    }
    closedir(d);
    (void)s;
}

/* sweep_archive_temps - archive/YYYY/MM/DD/.ID.tar.gz.sbtmp: never committed (unless the
 * batch is unfinished: another instance may be writing it, see arc_start) */
static void sweep_archive_temps(spool *s, char **keep, int nkeep)
{
    DIR *y = opendir(s->archive);
    if (!y)
        return;
    struct dirent *ey;
    while ((ey = readdir(y)) != NULL) {
        if (ey->d_name[0] == '.')
            continue;
        char *yp = path_join(s->archive, ey->d_name);
        DIR *m = opendir(yp);
        struct dirent *em;
        while (m && (em = readdir(m)) != NULL) {
            if (em->d_name[0] == '.')
                continue;
            char *mp = path_join(yp, em->d_name);
            DIR *dd = opendir(mp);
            struct dirent *ed;
            while (dd && (ed = readdir(dd)) != NULL) {
                if (ed->d_name[0] == '.')
                    continue;
                char *dp = path_join(mp, ed->d_name);
                sweep_temps(s, dp, keep, nkeep);
                free(dp);
            }
            if (dd)
                closedir(dd);
            free(mp);
        }
        if (m)
            closedir(m);
        free(yp);
    }
    closedir(y);
}

/* write_chain - archive/CHAIN: the head outside the ledger, so that removing the newest
 * archive and its ledger row together is still noticed.  Replaced by rename but not
 * fsync'ed: after a power loss it may be some links behind the ledger, which
 * repair_chain_file brings forward at the next start (an fsync per batch here was a tenth
 * of a one-order batch's fsyncs).  For the same reason it need not follow every batch: the
 * head is kept here and written at the end of each scan (and at close), or once a second
 * while a long scan goes on.  Each write makes a new inode and frees the old one, and on
 * ext4 without a journal every freed inode is skipped, and looked at, by each allocation
 * in its group for a minute or more (recently_deleted): a write per one-order batch was a
 * sixth of the inodes such a batch made and half of those it freed. */
static void write_chain(spool *s, const char *sha, const char *batch)
{
    snprintf(s->chain_sha, sizeof s->chain_sha, "%s", sha);
    free(s->chain_batch);
    s->chain_batch = xstrdup(batch);
    if (now_ms() - s->chain_written_ms >= 1000)
        chain_flush(s);
}

/* chain_flush - write archive/CHAIN if write_chain left a head unwritten */
static void chain_flush(spool *s)
{
    if (!s->chain_batch)
        return;
    sbuf err = {0}, line = {0};
    ofile *c = of_open(s->archive, "CHAIN", &err);
    if (c) {
        sbuf_printf(&line, "%s  %s\n", s->chain_sha, s->chain_batch);
        of_write(c, line.p, line.len);
        of_replace(c, &err);
    }
    if (err.len)
        log_event(LOG_LVL_ERROR, s->chain_batch, "archive/CHAIN", "chain-write-failed", "error=%s",
                  log_q(err.p));
    sbuf_free(&err);
    sbuf_free(&line);
    free(s->chain_batch);
    s->chain_batch = NULL;
    s->chain_written_ms = now_ms();
}

/* repair_chain_file - a crash (or a power loss: CHAIN is not fsync'ed) between the ledger
 * commit and archive/CHAIN leaves the file behind the ledger's head, by one link or more:
 * bring it forward when what it names is an ancestor of the head on the ledger's own chain
 * (or it is empty and the chain reaches its start), and only then; anything else is for
 * verify to report */
static void repair_chain_file(spool *s)
{
    const char *h = ledger_meta(s->led, "chain_head");
    if (!h)
        return;
    char *head = xstrdup(h);
    char *cp = path_join(s->archive, "CHAIN");
    char line[256] = "";
    FILE *f = fopen(cp, "r");
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    line[strcspn(line, " \n")] = '\0';
    if (strcmp(line, head) != 0) {
        batch_row top;
        if (ledger_batch_by_manifest(s->led, head, &top) == 0) {
            bool behind = false;
            char *at = top.prev ? xstrdup(top.prev) : NULL;
            for (long steps = 0; !behind && steps < 1000000; steps++) {
                if (!at) { /* the start of the chain */
                    behind = !line[0];
                    break;
                }
                if (strcmp(at, line) == 0) {
                    behind = true;
                    break;
                }
                batch_row b;
                if (ledger_batch_by_manifest(s->led, at, &b) != 0)
                    break;
                free(at);
                at = b.prev ? xstrdup(b.prev) : NULL;
                batch_row_free(&b);
            }
            free(at);
            if (behind) {
                write_chain(s, head, top.id);
                chain_flush(s);
                log_event(LOG_LVL_INFO, top.id, "archive/CHAIN", "chain-repaired", NULL);
            } else {
                log_event(LOG_LVL_WARN, NULL, "archive/CHAIN", "chain-disagrees",
                          "advice=\"run sagebridge archive verify\"");
            }
            batch_row_free(&top);
        }
    }
    free(cp);
    free(head);
}

/* restore_member - one member of an archive saved as dest, if its SHA-256 is want; 0 or -1
 * with err set */
static int restore_member(const char *ap, const char *member, const char *dest, const char *want,
                          sbuf *err)
{
    /* a hidden name: a crash here must not leave something recovery takes for an input */
    const char *slash = strrchr(dest, '/');
    sbuf part = {0};
    sbuf_printf(&part, "%.*s.%s.restore.sbtmp", slash ? (int)(slash - dest + 1) : 0, dest,
                slash ? slash + 1 : dest);
    char sha[65] = "";
    int rc = -1;
    if (arc_save_member(ap, member, part.p, err) != 0)
        ;
    else if (sha256_path(part.p, sha) != 0 || !want || strcmp(sha, want) != 0)
        sbuf_printf(err, "%s in %s is not the file the ledger recorded (sha256 %s)", member, ap,
                    sha);
    else if (renameat2(AT_FDCWD, part.p, AT_FDCWD, dest, RENAME_NOREPLACE) != 0)
        sbuf_printf(err, "%s: cannot restore it: %s", dest, strerror(errno));
    else
        rc = 0;
    if (rc != 0)
        unlink(part.p);
    sbuf_free(&part);
    return rc;
}

/* restore_input - a batch the ledger believes unarchived whose input is gone from work/: a
 * power loss kept the input's removal (and that of the batch's links work/.ID=NAME) but lost
 * the ledger's last commits.  Its archive, written and synced before those commits, still
 * holds the input and the outputs: put them back in work/ (each checked against the SHA-256
 * the ledger has) so that the batch can be finished as usual.  An open, locked descriptor of
 * the restored input, or -1 (nothing to restore from, or it does not match; why in err). */
static int restore_input(spool *s, const batch_row *b, sbuf *err)
{
    struct tm tm = {0};
    if (!b->claimed_at || !strptime(b->claimed_at, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        sbuf_printf(err, "the input is missing from work/ and the batch has no claim time");
        return -1;
    }
    sbuf ap = {0}, member = {0};
    sbuf_printf(&ap, "%s/%04d/%02d/%02d/%s.tar.gz", s->archive, tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, b->id);
    char *dest = path_join(s->work, b->input_name);
    pub_file f[SW_MAX_FILES];
    int n = parse_outputs(b->outputs, f, SW_MAX_FILES), fd = -1, rc = 0;
    if (access(ap.p, R_OK) != 0) {
        sbuf_printf(err,
                    "the input is missing from work/ and there is no archive %s to take it from",
                    ap.p);
        rc = -1;
    }
    for (int i = 0; i < n && rc == 0; i++) { /* the links publish keeps for the archive */
        sbuf lnk = {0};
        link_path(&lnk, s, b->id, f[i].name);
        sbuf_reset(&member);
        sbuf_printf(&member, "output/%s", f[i].name);
        if (access(lnk.p, F_OK) != 0)
            rc = restore_member(ap.p, member.p, lnk.p, f[i].sha256, err);
        sbuf_free(&lnk);
    }
    sbuf_reset(&member);
    sbuf_printf(&member, "input/%s", b->input_name);
    if (rc == 0 && restore_member(ap.p, member.p, dest, b->input_sha256, err) == 0 &&
        ((fd = open(dest, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
         flock(fd, LOCK_EX | LOCK_NB) != 0)) {
        sbuf_printf(err, "%s: cannot open the restored input: %s", dest, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    sbuf_free(&ap);
    sbuf_free(&member);
    free(dest);
    return fd;
}

/* migrate_batch_dirs - the links of older versions, work/ID.d/NAME, become work/.ID=NAME
 * (link_path): linked there first, then the folder removed */
static void migrate_batch_dirs(spool *s)
{
    DIR *d = opendir(s->work);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 3 || strcmp(e->d_name + l - 2, ".d") != 0)
            continue;
        char *bd = path_join(s->work, e->d_name);
        DIR *b = opendir(bd);
        bool moved = b != NULL;
        struct dirent *m;
        while (b && (m = readdir(b)) != NULL) {
            if (m->d_name[0] == '.')
                continue;
            sbuf from = {0}, to = {0}, id = {0};
            sbuf_printf(&id, "%.*s", (int)(l - 2), e->d_name);
            sbuf_printf(&from, "%s/%s", bd, m->d_name);
            link_path(&to, s, id.p, m->d_name);
            if (link(from.p, to.p) != 0 && errno != EEXIST) {
                log_event(LOG_LVL_ERROR, id.p, from.p, "recover-failed", "error=%s",
                          log_q(strerror(errno)));
                moved = false;
            }
            sbuf_free(&from);
            sbuf_free(&to);
            sbuf_free(&id);
        }
        if (b)
            closedir(b);
        if (moved)
            rm_batch_dir(bd);
        free(bd);
    }
    closedir(d);
}

/* recover - finish or redo whatever an earlier run left half done (SPEC §3 rule 4) */
static void recover(spool *s)
{
    char **ids = NULL;
    int n = 0;
    migrate_batch_dirs(s);
    /* Under the write lock no other instance is between BEGIN and COMMIT of a
     * conversion, so every temporary not owned by a committed batch is debris. */
    if (ledger_begin(s->led) == 0) {
        ledger_unfinished(s->led, &ids, &n);
        sweep_temps(s, s->out_sage, ids, n);
        sweep_temps(s, s->out_clarity, ids, n);
        sweep_temps(s, s->error, NULL, 0);
        sweep_archive_temps(s, ids, n);
        ledger_commit(s->led);
    }
    repair_chain_file(s);
    /* what is finished below is published: its conversion must be durable first (a commit
     * whose WAL sync failed in an earlier run may not be) */
    if (n && ledger_sync(s->led) != 0) {
        log_event(LOG_LVL_ERROR, NULL, s->dir, "recover-failed", "reason=%s",
                  log_q(ledger_error(s->led)));
        worst(s, EX_IOERR);
        for (int i = 0; i < n; i++)
            free(ids[i]);
        free(ids);
        return;
    }
    for (int i = 0; i < n; i++) {
        batch_row b;
        if (ledger_batch_get(s->led, ids[i], &b) != 0)
            continue;
        char *in = path_join(s->work, b.input_name);
        sbuf why = {0};
        int fd = open(in, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd); /* a live instance is on it */
        } else if (fd < 0 && (fd = restore_input(s, &b, &why)) >= 0) {
            /* the power-loss case restore_input describes */
            log_event(LOG_LVL_WARN, b.id, b.input_name, "recovering",
                      "state=%s input=\"restored from its archive\"", b.state);
            worst(s, finish_batch(s, &b, fd));
            close(fd);
        } else if (fd < 0) {
            log_event(LOG_LVL_ERROR, b.id, b.input_name, "recover-failed", "reason=%s",
                      log_q(why.len ? sbuf_str(&why) : "the input is missing from work/"));
            worst(s, EX_SOFTWARE);
        } else {
            log_event(LOG_LVL_INFO, b.id, b.input_name, "recovering", "state=%s", b.state);
            worst(s, finish_batch(s, &b, fd));
            close(fd);
        }
        sbuf_free(&why);
        free(in);
        batch_row_free(&b);
        free(ids[i]);
    }
    free(ids);

    /* what is left in work/: claimed but never committed (convert again), or
     * archived but not yet removed (remove) */
    DIR *d = opendir(s->work);
    if (!d)
        return;
    struct dirent *e;
    char **names = NULL;
    int nn = 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' || is_link_name(e->d_name)) {
            names = xrealloc(names, (size_t)(nn + 1) * sizeof *names);
            names[nn++] = xstrdup(e->d_name);
        }
    closedir(d);
    for (int i = 0; i < nn; i++) {
        char *p = path_join(s->work, names[i]);
        struct stat st;
        if (names[i][0] == '.') {
            /* a link of a batch (link_path): kept until the batch is archived */
            *strchr(names[i], '=') = '\0';
            batch_row b;
            int r = ledger_batch_get(s->led, names[i] + 1, &b);
            if (r == 1 || (r == 0 && strcmp(b.state, B_ARCHIVED) == 0))
                unlink(p);
            if (r == 0)
                batch_row_free(&b);
        } else if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && access(p, F_OK) == 0) {
                batch_row b;
                char sha[65];
                int r = ledger_batch_by_input(s->led, names[i], &b);
                if (r == 0 && strcmp(b.state, B_ARCHIVED) == 0 && sha256_fd(fd, sha) == 0 &&
                    strcmp(sha, b.input_sha256) == 0) {
                    cleanup(s, &b, fd); /* archived: only the removal was missing */
                } else if (r != 0 || strcmp(b.state, B_ARCHIVED) == 0) {
                    log_event(LOG_LVL_INFO, NULL, names[i], "recovering", "state=claimed");
                    process_claimed(s, names[i], fd, time(NULL), NULL);
                }
                if (r == 0)
                    batch_row_free(&b);
            }
            if (fd >= 0)
                close(fd);
        }
        free(p);
        free(names[i]);
    }
    free(names);
}

/* ---------------------------------------------------------------- scanning */

typedef struct {
    char **names;
    int n;
} nameset;

static void ns_add(nameset *ns, const char *name)
{
    for (int i = 0; i < ns->n; i++)
        if (strcmp(ns->names[i], name) == 0)
            return;
    ns->names = xrealloc(ns->names, (size_t)(ns->n + 1) * sizeof *ns->names);
    ns->names[ns->n++] = xstrdup(name);
}

static bool ns_has(const nameset *ns, const char *name)
{
    for (int i = 0; i < ns->n; i++)
        if (strcmp(ns->names[i], name) == 0)
            return true;
    return false;
}

static void ns_clear(nameset *ns)
{
    for (int i = 0; i < ns->n; i++)
        free(ns->names[i]);
    free(ns->names);
    ns->names = NULL;
    ns->n = 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* scan_dir - one look at an inbound folder: take what is complete; how many wait to settle */
static int scan_dir(spool *s, const char *dir, const nameset *immediate, long *next_ms)
{
    DIR *d = opendir(dir);
    if (!d) {
        log_event(LOG_LVL_ERROR, NULL, dir, "scan-failed", "error=%s", log_q(strerror(errno)));
        return 0;
    }
    nameset all = {0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            ns_add(&all, e->d_name);
    closedir(d);
    if (all.n)
        qsort(all.names, (size_t)all.n, sizeof *all.names, cmp_names); /* oldest name first */
    int settling = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (int i = 0; i < all.n; i++) {
        const char *name = all.names[i];
        if (ignored(s, name))
            continue;
        size_t l = strlen(name);
        if (s->done_marker) {
            if (l > 5 && strcmp(name + l - 5, ".done") == 0)
                continue;
            sbuf m = {0};
            sbuf_printf(&m, "%s/%s.done", dir, name);
            int have = access(m.p, F_OK) == 0;
            sbuf_free(&m);
            if (!have)
                continue;
        }
        char *p = path_join(dir, name);
        struct stat st;
        int ok = lstat(p, &st);
        free(p);
        if (ok != 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            tell_once(s, dir, name, "a symbolic link (not followed)");
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            tell_once(s, dir, name, "not a regular file");
            continue;
        }
        long age_ms = (long)(now.tv_sec - st.st_mtim.tv_sec) * 1000 +
                      (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
        bool ready = ns_has(immediate, name) || s->done_marker || age_ms >= s->settle_ms;
        if (!ready) {
            settling++;
            long left = s->settle_ms - age_ms;
            if (*next_ms < 0 || left < *next_ms)
                *next_ms = left;
            continue;
        }
        sbuf m = {0};
        if (s->done_marker)
            sbuf_printf(&m, "%s/%s.done", dir, name);
        s->marker_next = m.p; /* group_add keeps it for a batch of the group */
        int r = process_file(s, dir, name);
        s->marker_next = NULL;
        if (r == DONE_OK && m.p)
            unlink(m.p); /* the marker has served: the batch is archived */
        sbuf_free(&m);
    }
    ns_clear(&all);
    return settling;
}

/* scan - both inbound folders */
static int scan(spool *s, const nameset *immediate, long *next_ms)
{
    *next_ms = -1;
    s->grouping = true;
    int settling = scan_dir(s, s->in_clarity, immediate, next_ms) +
                   scan_dir(s, s->in_sage, immediate, next_ms);
    group_flush(s);
    s->grouping = false;
    chain_flush(s);
    return settling;
}

/* --------------------------------------------------------------- running */

/* reload - SIGHUP: new configuration and templates, or keep the old ones */
static void reload(spool *s)
{
    sbuf err = {0};
    config *c = cfg_load(s->cfg_path, &err);
    tpl_set *t = c ? load_templates(c, &err) : NULL;
    spool trial = *s;
    trial.cfg = c;
    trial.ignore = NULL;
    trial.nignore = 0;
    if (t && load_settings(&trial, &err) == 0) {
        for (int i = 0; i < s->nignore; i++)
            free(s->ignore[i]);
        free(s->ignore);
        tpl_set_free(s->tpl);
        cfg_free(s->cfg);
        s->cfg = c;
        s->tpl = t;
        s->ignore = trial.ignore;
        s->nignore = trial.nignore;
        s->settle_ms = trial.settle_ms;
        s->incomplete_s = trial.incomplete_s;
        s->rescan_s = trial.rescan_s;
        s->poll_ms = trial.poll_ms;
        s->archive_level = trial.archive_level;
        s->poll_mode = trial.poll_mode;
        s->done_marker = trial.done_marker;
        s->reject_file = trial.reject_file;
        s->formats = trial.formats;
        s->deliver_auto = trial.deliver_auto;
        log_event(LOG_LVL_INFO, NULL, s->cfg_path, "reloaded", NULL);
    } else {
        for (int i = 0; i < trial.nignore; i++)
            free(trial.ignore[i]);
        free(trial.ignore);
        tpl_set_free(t);
        cfg_free(c);
        log_event(LOG_LVL_ERROR, NULL, s->cfg_path, "reload-refused",
                  "error=%s kept=\"the running configuration\"", log_q(sbuf_str(&err)));
    }
    sbuf_free(&err);
}

/* auto_deliver - deliver = auto: what run produced for Clarity goes out at once */
static void auto_deliver(spool *s)
{
    if (!s->deliver_auto)
        return;
    DIR *d = opendir(s->out_clarity);
    struct dirent *e;
    bool any = false;
    while (d && !any && (e = readdir(d)) != NULL)
        any = e->d_name[0] != '.';
    if (d)
        closedir(d);
    if (!any)
        return;
    int rc = deliver_run(s, true);
    if (rc != 0)
        log_event(LOG_LVL_WARN, NULL, s->out_clarity, "auto-deliver",
                  "status=%d action=\"batches wait in out/clarity for the next pass\"", rc);
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int spool_run(spool *s, bool once)
{
    s->worst = EX_OK;
    recover(s);
    nameset immediate = {0};
    long next = -1;
    if (once) {
        /* everything waiting, including files that settle within settle_ms */
        long deadline = now_ms() + s->settle_ms + 1000;
        while (scan(s, &immediate, &next) > 0 && now_ms() < deadline)
            usleep((useconds_t)(next > 0 && next < 200 ? next : 200) * 1000);
        auto_deliver(s);
        log_event(LOG_LVL_INFO, NULL, NULL, "run-done", "batches=%llu",
                  (unsigned long long)s->processed);
        return s->worst;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    int ifd = -1;
    if (!s->poll_mode) {
        ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ifd < 0 ||
            inotify_add_watch(ifd, s->in_clarity, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
            log_event(LOG_LVL_WARN, NULL, s->in_clarity, "inotify-unavailable",
                      "error=%s fallback=poll", log_q(strerror(errno)));
            if (ifd >= 0)
                close(ifd);
            ifd = -1;
        }
    }
    log_event(LOG_LVL_INFO, NULL, s->dir, "watching", "mode=%s settle_ms=%ld",
              ifd >= 0 ? "inotify" : "poll", s->settle_ms);
    long last_scan = 0;
    bool stop = false, due = true;
    while (!stop) {
        long t = now_ms();
        long period = ifd >= 0 ? s->rescan_s * 1000 : s->poll_ms;
        if (due || t - last_scan >= period) {
            int settling = scan(s, &immediate, &next);
            ns_clear(&immediate);
            auto_deliver(s);
            last_scan = now_ms();
            due = false;
            if (!settling)
                next = -1;
        }
        long wait = period - (now_ms() - last_scan);
        if (next >= 0 && next + 5 < wait)
            wait = next + 5;
        if (wait < 0)
            wait = 0;
        struct pollfd pf[2] = {{sfd, POLLIN, 0}, {ifd, POLLIN, 0}};
        int np = poll(pf, ifd >= 0 ? 2 : 1, (int)wait);
        if (np <= 0) {
            if (next >= 0)
                due = true;
            continue;
        }
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGHUP)
                    reload(s);
                else
                    stop = true; /* the batch in hand was finished before we got here */
            }
        }
        if (ifd >= 0 && (pf[1].revents & POLLIN)) {
            char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
            ssize_t len;
            while ((len = read(ifd, buf, sizeof buf)) > 0) {
                for (char *p = buf; p < buf + len;) {
                    struct inotify_event *ev = (struct inotify_event *)p;
                    if (ev->mask & IN_Q_OVERFLOW) {
                        log_event(LOG_LVL_WARN, NULL, s->in_clarity, "inotify-overflow",
                                  "action=rescan");
                    } else if (ev->len && (ev->mask & IN_MOVED_TO)) {
                        ns_add(&immediate, ev->name); /* renamed in: complete by definition */
                    } else if (ev->len && (ev->mask & IN_CREATE)) {
                        /* a hard link (OpenSSH's sftp-server renames by link()) */
                        char *fp = path_join(s->in_clarity, ev->name);
                        char *fs = path_join(s->in_sage, ev->name);
                        struct stat st;
                        if ((lstat(fp, &st) == 0 || lstat(fs, &st) == 0) && S_ISREG(st.st_mode) &&
                            st.st_nlink > 1)
                            ns_add(&immediate, ev->name);
                        free(fp);
                        free(fs);
                    }
                    p += sizeof *ev + ev->len;
                }
            }
            due = true;
        }
    }
    ns_clear(&immediate);
    if (ifd >= 0)
        close(ifd);
    close(sfd);
    log_event(LOG_LVL_INFO, NULL, NULL, "stopped", "batches=%llu",
              (unsigned long long)s->processed);
    return s->worst == EX_DATAERR ? EX_OK : s->worst;
}

/* --------------------------------------------------------------- status */

typedef struct {
    const char *name;
    const char *path;
    int count;
    long oldest_s;
} qinfo;

static void count_dir(const char *path, qinfo *q)
{
    q->count = 0;
    q->oldest_s = -1;
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    time_t now = time(NULL);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || (l > 11 && strcmp(e->d_name + l - 11, ".error.json") == 0) ||
            (l > 13 && strcmp(e->d_name + l - 13, ".rejects.json") == 0))
            continue;
        char *p = path_join(path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            q->count++;
            long age = (long)(now - st.st_mtime);
            if (age > q->oldest_s)
                q->oldest_s = age;
        }
        free(p);
    }
    closedir(d);
}

int spool_status(spool *s, bool json)
{
    char *pc[] = {path_join(s->dir, "in/clarity"),  path_join(s->dir, "in/sage"),
                  path_join(s->dir, "work"),        path_join(s->dir, "out/sage"),
                  path_join(s->dir, "out/clarity"), path_join(s->dir, "hold"),
                  path_join(s->dir, "error")};
    const char *nm[] = {"in/clarity",  "in/sage", "work", "out/sage",
                        "out/clarity", "hold",    "error"};
    qinfo q[7];
    for (int i = 0; i < 7; i++) {
        q[i].name = nm[i];
        q[i].path = pc[i];
        count_dir(pc[i], &q[i]);
    }
    batch_row *rows = NULL;
    int nrows = 0;
    ledger_last_batches(s->led, 10, &rows, &nrows);
    char *db = path_join(s->dir, "ledger.db");
    struct stat st;
    long long dbsize = stat(db, &st) == 0 ? (long long)st.st_size : 0;
    free(db);
    long long nb = (long long)ledger_count(s->led, "batches");
    if (json) {
        yajl_gen g = yajl_gen_alloc(NULL);
        yajl_gen_config(g, yajl_gen_beautify, 1);
        yajl_gen_map_open(g);
        gen_kv(g, "spool", s->dir);
        gen_s(g, "folders");
        yajl_gen_map_open(g);
        for (int i = 0; i < 7; i++) {
            gen_s(g, q[i].name);
            yajl_gen_map_open(g);
            gen_ki(g, "files", q[i].count);
            gen_s(g, "oldest_age_s");
            if (q[i].oldest_s >= 0)
                yajl_gen_integer(g, q[i].oldest_s);
            else
                yajl_gen_null(g);
            yajl_gen_map_close(g);
        }
        yajl_gen_map_close(g);
        gen_s(g, "last_batches");
        yajl_gen_array_open(g);
        for (int i = 0; i < nrows; i++) {
            yajl_gen_map_open(g);
            gen_kv(g, "id", rows[i].id);
            gen_kv(g, "input", rows[i].input_name);
            gen_kv(g, "state", rows[i].state);
            gen_kv(g, "at", rows[i].updated_at);
            gen_ki(g, "records", rows[i].records);
            gen_ki(g, "published", rows[i].published);
            gen_ki(g, "rejected", rows[i].rejected);
            gen_ki(g, "duplicate", rows[i].duplicate);
            gen_kv(g, "error", rows[i].error);
            gen_kv(g, "duplicate_of", rows[i].duplicate_of);
            yajl_gen_map_close(g);
        }
        yajl_gen_array_close(g);
        gen_s(g, "ledger");
        yajl_gen_map_open(g);
        gen_ki(g, "bytes", dbsize);
        gen_ki(g, "batches", nb);
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
        const unsigned char *buf;
        size_t len;
        yajl_gen_get_buf(g, &buf, &len);
        fwrite(buf, 1, len, stdout);
        yajl_gen_free(g);
    } else {
        printf("spool %s\n\n%-12s %6s  %s\n", s->dir, "folder", "files", "oldest");
        for (int i = 0; i < 7; i++) {
            if (q[i].oldest_s >= 0)
                printf("%-12s %6d  %lds\n", q[i].name, q[i].count, q[i].oldest_s);
            else
                printf("%-12s %6d  -\n", q[i].name, q[i].count);
        }
        printf("\nlast batches\n");
        if (!nrows)
            printf("  (none yet)\n");
        for (int i = 0; i < nrows; i++)
            if (rows[i].duplicate_of)
                printf("  %-40s %-9s %s  %s: same content as %s, not published again\n", rows[i].id,
                       rows[i].state, rows[i].updated_at ? rows[i].updated_at : "",
                       rows[i].input_name, rows[i].duplicate_of);
            else
                printf("  %-40s %-9s %s  %s: %lld in, %lld published, %lld rejected, %lld "
                       "duplicate%s%s\n",
                       rows[i].id, rows[i].state, rows[i].updated_at ? rows[i].updated_at : "",
                       rows[i].input_name, (long long)rows[i].records, (long long)rows[i].published,
                       (long long)rows[i].rejected, (long long)rows[i].duplicate,
                       rows[i].error ? "; " : "", rows[i].error ? rows[i].error : "");
        printf("\nledger %lld bytes, %lld batches\n", dbsize, nb);
        if (q[6].count)
            printf("\n%d file(s) in error/: each has NAME.error.json beside it; fix, then "
                   "`sagebridge requeue NAME`\n",
                   q[6].count);
        if (q[5].count)
            printf("%d file(s) held in hold/: `sagebridge release NAME` when they may go\n",
                   q[5].count);
    }
    for (int i = 0; i < nrows; i++)
        batch_row_free(&rows[i]);
    free(rows);
    for (int i = 0; i < 7; i++)
        free(pc[i]);
    return EX_OK;
}

/* ------------------------------------------------------ operator moves */

/* origin_of - the inbound folder a file belongs to: JSON from Clarity, the rest from Sage */
static const char *origin_of(spool *s, const char *name)
{
    if (strncmp(name, "CLARITY_", 8) == 0)
        return s->out_clarity; /* a batch whose delivery failed: back in the queue */
    size_t l = strlen(name);
    bool json = (l > 5 && strcasecmp(name + l - 5, ".json") == 0) ||
                (l > 7 && strcasecmp(name + l - 7, ".ndjson") == 0);
    return json ? s->in_clarity : s->in_sage;
}

int spool_move(spool *s, const char *op, const char *name)
{
    if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
        fprintf(stderr, "sagebridge: %s: give the file's name only, not a path\n", name);
        return 64;
    }
    const char *from_dir, *to_dir;
    if (strcmp(op, "hold") == 0) {
        char *c = path_join(s->in_clarity, name);
        from_dir = access(c, F_OK) == 0 ? s->in_clarity : s->in_sage;
        free(c);
        to_dir = s->hold;
    } else if (strcmp(op, "release") == 0) {
        from_dir = s->hold;
        to_dir = origin_of(s, name);
    } else {
        from_dir = s->error;
        to_dir = origin_of(s, name);
    }
    char *from = path_join(from_dir, name), *to = path_join(to_dir, name);
    int rc = EX_OK;
    struct stat st;
    if (lstat(from, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "sagebridge: %s: no such file in %s\n", name, from_dir);
        rc = EX_NOINPUT;
    } else if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) != 0) {
        fprintf(stderr, "sagebridge: %s: cannot move to %s: %s\n", name, to_dir,
                errno == EEXIST ? "a file of that name is already there" : strerror(errno));
        rc = EX_CANTCREAT;
    } else {
        if (strcmp(op, "requeue") == 0) {
            /* the reason has served; the ledger keeps the rejection */
            sbuf e = {0};
            sbuf_printf(&e, "%s.error.json", from);
            unlink(e.p);
            sbuf_reset(&e);
            sbuf_printf(&e, "%s.rejects.json", from);
            unlink(e.p);
            sbuf_reset(&e);
            sbuf_printf(&e, "%s.responses.ndjson", from);
            unlink(e.p);
            sbuf_free(&e);
        }
        log_event(LOG_LVL_INFO, NULL, name, op, "from=%s to=%s", log_q(from_dir), log_q(to_dir));
        printf("%s: %s -> %s\n", name, from_dir, to_dir);
    }
    free(from);
    free(to);
    return rc;
}

struct ledger *spool_ledger(spool *s)
{
    return s->led;
}

const char *spool_archive_dir(spool *s)
{
    return s->archive;
}

const char *spool_path(spool *s)
{
    return s->dir;
}

/* ---------------------------------------------------------------- replay */

/* a CSV read one row at a time (libcsv, fed a line at a time: memory is one row) */
typedef struct {
    FILE *f;
    struct csv_parser p;
    char **cell;
    int n, cap, ready, eof;
    char *line;
    size_t lcap;
} csv_rows;

static void cr_field(void *s, size_t n, void *u)
{
    csv_rows *r = u;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 32;
        r->cell = xrealloc(r->cell, (size_t)r->cap * sizeof *r->cell);
    }
    r->cell[r->n++] = strndup(s ? (const char *)s : "", s ? n : 0);
}

static void cr_row(int c, void *u)
{
    (void)c;
    ((csv_rows *)u)->ready = 1;
}

static void cr_clear(csv_rows *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->cell[i]);
    r->n = 0;
    r->ready = 0;
}

/* cr_next - 1 with a row in r->cell, 0 at the end */
static int cr_next(csv_rows *r)
{
    cr_clear(r);
    while (!r->ready && !r->eof) {
        ssize_t k = getline(&r->line, &r->lcap, r->f);
        if (k <= 0) {
            csv_fini(&r->p, cr_field, cr_row, r);
            r->eof = 1;
        } else {
            csv_parse(&r->p, r->line, (size_t)k, cr_field, cr_row, r);
        }
    }
    return r->ready;
}

static int cr_open(csv_rows *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->f = fopen(path, "rb");
    if (!r->f)
        return -1;
    csv_init(&r->p, CSV_APPEND_NULL);
    return 0;
}

static void cr_close(csv_rows *r)
{
    cr_clear(r);
    free(r->cell);
    free(r->line);
    csv_free(&r->p);
    if (r->f)
        fclose(r->f);
}

/* diff_csv - print each changed cell: "FILE row N (KEY) COLUMN: old -> new"; count changes */
static int diff_csv(const char *name, const char *a, const char *b)
{
    csv_rows x, y;
    if (cr_open(&x, a) != 0 || cr_open(&y, b) != 0) {
        printf("%s: cannot read for comparison\n", name);
        cr_close(&x);
        return 1;
    }
    char **head = NULL;
    int nh = 0, changes = 0;
    for (long row = 0;; row++) {
        int hx = cr_next(&x), hy = cr_next(&y);
        if (!hx && !hy)
            break;
        if (hx != hy) {
            printf("%s row %ld (%s): only in the %s\n", name, row, hx ? x.cell[0] : y.cell[0],
                   hx ? "original" : "replay");
            changes++;
            continue;
        }
        if (row == 0) {
            head = xcalloc((size_t)x.n + 1, sizeof *head);
            for (int i = 0; i < x.n; i++)
                head[i] = xstrdup(x.cell[i]);
            nh = x.n;
        }
        int m = x.n > y.n ? x.n : y.n;
        for (int i = 0; i < m; i++) {
            const char *o = i < x.n ? x.cell[i] : "", *n = i < y.n ? y.cell[i] : "";
            if (strcmp(o, n) != 0) {
                printf("%s row %ld (%s) %s: \"%s\" -> \"%s\"\n", name, row, x.n ? x.cell[0] : "",
                       i < nh ? head[i] : "?", o, n);
                changes++;
            }
        }
    }
    for (int i = 0; i < nh; i++)
        free(head[i]);
    free(head);
    cr_close(&x);
    cr_close(&y);
    return changes;
}

/* files_differ - 1 when two files differ (byte compare) */
static int files_differ(const char *a, const char *b)
{
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    int d = !x || !y;
    char bx[65536], by[65536];
    while (!d) {
        size_t nx = fread(bx, 1, sizeof bx, x), ny = fread(by, 1, sizeof by, y);
        if (nx != ny || memcmp(bx, by, nx) != 0)
            d = 1;
        if (nx == 0)
            break;
    }
    if (x)
        fclose(x);
    if (y)
        fclose(y);
    return d;
}

/* hook_used_ro - for a dry run: TranNo values taken by other batches than the replayed one */
typedef struct {
    spool *s;
    const char *kind, *batch;
} ro_ctx;

static int hook_used_ro(void *ctx, const char *column, const char *v, size_t n)
{
    (void)column;
    ro_ctx *r = ctx;
    return ledger_tranno_used_by_other(r->s->led, r->kind, v, n, r->batch) == 1;
}

int spool_replay(spool *s, const char *id, bool dry, bool force)
{
    batch_row b;
    int r = ledger_batch_get(s->led, id, &b);
    if (r != 0) {
        fprintf(stderr, "sagebridge: %s: no such batch (see `sagebridge archive list`)\n", id);
        return r < 0 ? EX_IOERR : EX_NOINPUT;
    }
    if (!b.archive || !b.input_name || (b.kind && !strcmp(b.kind, "prune"))) {
        fprintf(stderr, "sagebridge: %s: no archived input to replay (state %s)\n", id, b.state);
        batch_row_free(&b);
        return EX_NOINPUT;
    }
    char *apath = path_join(s->archive, b.archive);
    sbuf member = {0}, err = {0}, tmp = {0};
    sbuf_printf(&member, "input/%s", b.input_name);
    int rc = EX_OK;
    if (dry) {
        sbuf_printf(&tmp, "%s/.replay-XXXXXX", s->work);
        if (!mkdtemp(tmp.p)) {
            fprintf(stderr, "sagebridge: %s: %s\n", tmp.p, strerror(errno));
            rc = EX_CANTCREAT;
            goto out;
        }
        char *in = path_join(tmp.p, b.input_name);
        if (arc_save_member(apath, member.p, in, &err) != 0) {
            fprintf(stderr, "sagebridge: %s\n", sbuf_str(&err));
            rc = EX_IOERR;
            free(in);
            goto out_tmp;
        }
        pub_file orig[SW_MAX_FILES];
        int no = parse_outputs(b.outputs, orig, SW_MAX_FILES);
        int formats = 0;
        for (int i = 0; i < no; i++) {
            size_t l = strlen(orig[i].name);
            formats |= l > 4 && !strcmp(orig[i].name + l - 4, ".xml") ? SW_XML : SW_CSV;
        }
        ro_ctx rc_ = {s, b.kind, b.id};
        tpl_hooks hooks = {hook_used_ro, NULL, NULL, &rc_};
        convert_opts o = {.templates = s->tpl,
                          .outdir = tmp.p,
                          .formats = formats ? formats : s->formats,
                          .batch = b.id,
                          .display_name = b.input_name,
                          .hooks = &hooks,
                          .rejects_name = "replay.rejects.json"};
        convert_stats cs;
        int crc = convert_file(&o, in, &cs);
        free(in);
        if (crc != EX_OK && crc != EX_DATAERR) {
            rc = crc;
            goto out_tmp;
        }
        int changes = 0;
        for (int i = 0; i < no; i++) {
            char *now = path_join(tmp.p, orig[i].name);
            sbuf was = {0};
            sbuf_printf(&was, "%s/was-%s", tmp.p, orig[i].name);
            sbuf om = {0};
            sbuf_printf(&om, "output/%s", orig[i].name);
            if (arc_save_member(apath, om.p, was.p, &err) != 0) {
                printf("%s: not in the archive\n", orig[i].name);
                changes++;
            } else if (access(now, F_OK) != 0) {
                printf("%s: the replay writes no such file\n", orig[i].name);
                changes++;
            } else if (files_differ(was.p, now)) {
                size_t l = strlen(orig[i].name);
                if (l > 4 && !strcmp(orig[i].name + l - 4, ".csv"))
                    changes += diff_csv(orig[i].name, was.p, now);
                else {
                    printf("%s: differs (the CSV files name the fields)\n", orig[i].name);
                    changes++;
                }
            }
            free(now);
            sbuf_free(&was);
            sbuf_free(&om);
        }
        if (changes)
            printf("replay of %s (dry run, templates of today): %d difference%s; nothing was "
                   "published\n",
                   b.id, changes, changes == 1 ? "" : "s");
        else
            printf("replay of %s (dry run, templates of today): no differences; nothing was "
                   "published\n",
                   b.id);
        if (cs.rejected)
            printf("%llu record%s would be rejected\n", (unsigned long long)cs.rejected,
                   cs.rejected == 1 ? "" : "s");
    out_tmp:
        /* the scratch folder holds only what this dry run wrote */
        {
            DIR *d = opendir(tmp.p);
            struct dirent *e;
            while (d && (e = readdir(d)) != NULL)
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                    char *p = path_join(tmp.p, e->d_name);
                    unlink(p);
                    free(p);
                }
            if (d)
                closedir(d);
            rmdir(tmp.p);
        }
        goto out;
    }
    /* a real replay: a new batch through the whole pipeline */
    s->worst = EX_OK;
    recover(s);
    sbuf name = {0};
    sbuf_printf(&name, "replay-%s-%s", b.id, b.input_name);
    char *part = path_join(s->work, ".replay.sbtmp");
    char *dest = path_join(s->work, name.p);
    if (arc_save_member(apath, member.p, part, &err) != 0 ||
        renameat2(AT_FDCWD, part, AT_FDCWD, dest, RENAME_NOREPLACE) != 0) {
        fprintf(stderr, "sagebridge: %s\n", err.len ? err.p : strerror(errno));
        unlink(part);
        rc = EX_IOERR;
    } else {
        int fd = open(dest, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
            fprintf(stderr, "sagebridge: %s: %s\n", dest, strerror(errno));
            rc = EX_IOERR;
        } else {
            s->replay_of = b.id;
            s->force = force;
            log_event(LOG_LVL_INFO, NULL, name.p, "replay", "of=%s force_republish=%s", b.id,
                      force ? "yes" : "no");
            process_claimed(s, name.p, fd, time(NULL), NULL);
            s->replay_of = NULL;
            s->force = false;
            rc = s->worst;
        }
        if (fd >= 0)
            close(fd);
    }
    free(part);
    free(dest);
    sbuf_free(&name);
out:
    free(apath);
    sbuf_free(&member);
    sbuf_free(&err);
    sbuf_free(&tmp);
    batch_row_free(&b);
    return rc;
}

const config *spool_config(spool *s)
{
    return s->cfg;
}
