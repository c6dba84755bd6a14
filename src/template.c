/*
 * template.c - load mapping templates and evaluate them on records.
 *
 * LOADING
 *	A template file is parsed with libxml2, validated against
 *	xsd/template.xsd (errors carry the file's line number), then compiled
 *	into a tree of nodes.  Every source path becomes a schema slot, every
 *	<setting> is resolved from the configuration (or the template's own
 *	default) and every lookup table is loaded, so that evaluation never
 *	touches a file or a string key.
 *
 * EVALUATING
 *	tpl_eval runs the checks, then computes the columns of each table in
 *	order: one row per record, or one per item for tables with for-each.
 *	Values are text; they live in the result's arena until the next
 *	record.  Arithmetic (add, sub, mul, neg, sum, round) works on decimals
 *	(decimal.c) from end to end, and a field's or variable's decimal is kept
 *	for the record once parsed: text is formatted only where a column or a
 *	message shows it.  The first failure rejects the record and is reported
 *	with the field it concerns.
 *
 * SPECULATING
 *	The only state one record leaves for the next is what the duplicate
 *	sets, sequences and ledger hooks hold.  A speculative run
 *	(tpl_run_new_spec, on another thread, ahead of file order) touches
 *	none of it: it answers "not seen" to every duplicate question and notes
 *	the question, and gives up at a sequence or a ledger lookup.
 *	tpl_settle, on the ordinary run and in file order, asks the noted
 *	questions; all "no" means the ordinary evaluation would have gone the
 *	same way, so the result stands and its values join the sets.
 *
 * DIAGNOSTICS
 *	tpl_load returns NULL and puts "FILE:LINE: what to do" into err.
 */
#include "template.h"

#include <dirent.h>
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <yajl/yajl_gen.h>

#include "decimal.h"
#include "digest.h"
#include "lookup.h"
#include "seen.h"

#define TPL_NS "urn:sagebridge:template:1"

typedef enum {
    N_FIELD,
    N_ITEM,
    N_CONST,
    N_VAR,
    N_REF,
    N_LINENO,
    N_COALESCE,
    N_CONCAT,
    N_WORD,
    N_TRIM,
    N_UPPER,
    N_LOWER,
    N_DIGITS,
    N_PADLEFT,
    N_DATE,
    N_ROUND,
    N_ADD,
    N_SUB,
    N_MUL,
    N_NEG,
    N_SUM,
    N_LOOKUP,
    N_CHOOSE,
    N_SEQUENCE,
    N_KEY_OF,
    /* conditions */
    C_NOT_EMPTY,
    C_ZERO,
    C_POSITIVE,
    C_NON_NEGATIVE,
    C_WITHIN,
    C_UNIQUE,
    C_MIN_ITEMS,
} ntype;

enum { W_FIRST, W_LAST, W_BUT_FIRST, W_BUT_LAST };
enum { LK_EMPTY, LK_KEEP, LK_ERROR };
enum { T_EQUALS, T_IN, T_EMPTY, T_NOT_EMPTY };

typedef struct node node;

typedef struct {
    node *subject;
    int test;
    char **words; /* equals: 1, in: n */
    int nwords;
    node *then;
} when;

struct node {
    ntype t;
    int line;
    int group; /* N_ITEM, N_SUM, C_MIN_ITEMS: item group */
    int slot;
    char *s; /* const text, separator, path (for messages), date format, prefix, code */
    size_t slen;
    int i1, i2; /* width, scale, word, table, column, lookup mode, counter id */
    char c;
    bool flag; /* round: trim */
    lookup_table *lk;
    node **kids;
    int nkids;
    when *whens;
    int nwhens;
    node *otherwise;
    char *msg; /* lookup error message */
};

typedef struct {
    char *name;
    node *expr;
} let;

typedef struct {
    char *code, *field, *message;
    int group; /* for-each group or -1 */
    node *cond;
    int hset_id;
} check;

typedef struct {
    char *name;
    int max;
    bool cut; /* too long: cut with a warning, else reject */
    bool unique;
    int uniq_id;
    bool plain; /* its value can hold no control character (numbers, dates, constants) */
    node *expr, *fallback;
} column;

typedef struct {
    char *name;
    int group; /* for-each group or -1 */
    int ncols;
    column *cols;
    const char **colnames;
} table;

typedef struct {
    char *name;
    lookup_table *lk;
} named_lookup;

enum { J_MEMBER, J_OBJECT, J_LIST };
enum { JT_STRING, JT_NUMBER, JT_BOOL, JT_ID };

typedef struct jnode jnode;
struct jnode {
    int kind, type;
    char *name, *from;
    node *expr;
    jnode **kids;
    int nkids;
};

typedef struct {
    tpl_op_desc d;
    char *op, *method, *path, *collect, *lines;
    jnode **members;
    int n;
    jnode **items; /* grouped: the members of one line */
    int nitems;
    int group_slot;
    node *when; /* grouped: a condition every record of the group must meet */
} opdef;

struct template
{
    tpl_set *set;
    char *name, *kind, *path, *sha;
    char **detect;
    int ndetect;
    int key_slot;
    char *key_col; /* output column of the first table the key maps to */
    int key_ci;
    let *lets;
    int nlets;
    check *checks;
    int nchecks;
    table *tables;
    int ntables;
    node *currency; /* <totals>: currency of a record, and the sums of the control totals */
    node **totals;
    const char **total_names;
    int ntotals;
    tpl_table_desc *descs;
    tpl_output_desc out;
    named_lookup *lookups;
    opdef *opdefs;
    int nopdefs;
    tpl_op_desc *opdescs;
    int nlookups;
    int ncounters, nhsets, nuniq;
    char *settings_section;
    xmlDocPtr doc; /* kept only while loading */
    sbuf *err;
    const char *file;
    char **setting_names, **setting_defaults;
    int nsettings;
};

struct tpl_set {
    const config *cfg;
    char *xsd_dir;
    rec_schema *schema;
    template **t;
    int n;
    xmlSchemaPtr tschema;
    char *tz; /* the one time zone every template of the set uses */
};

typedef struct {
    decimal *v;
    uint64_t *gen;
    size_t cap;
} fdec;

struct tpl_run {
    template *t;
    const tpl_hooks *hooks;
    uint64_t *counters;
    seen **hsets; /* per check with <unique> */
    seen **uniq;  /* per unique column */
    tval *var_val;
    bool *var_done;
    decimal *var_dec; /* a variable's value as a decimal, once asked for */
    bool *var_dec_done;
    uint64_t *pending; /* values of unique checks and columns of the current record */
    int *pending_set;  /* and their sets: SET_CHECK(i) or SET_COLUMN(i) */
    sbuf seen_err;     /* what the on-disk part of a duplicate check said */
    int npending, cap_pending;
    /* fields parsed as decimals, kept for the record (quantity, unitPrice… are read by
     * several columns, checks and totals): valid where *_gen equals gen */
    uint64_t gen;
    fdec hdr;
    fdec *items; /* per item group: nitems * nslots */
    int ngroups;
    bool spec; /* tpl_run_new_spec: answers no duplicate question, asks them in res->spec */
};

/* a duplicate set named by an int: check i's (<unique>) or unique column i's */
#define SET_CHECK(i)  ((i)*2)
#define SET_COLUMN(i) ((i)*2 + 1)

/* one question a speculative evaluation assumed the answer "no" to: is h in set? (and, for a
 * column, is v used by an earlier batch?) */
typedef struct {
    int set;
    uint64_t h;
    const char *col; /* unique column: its name for the used hook; NULL for a check */
    tval v;
} spec_q;

struct tpl_spec {
    bool abandon; /* it met what only the ordered evaluation may do (a sequence, a ledger) */
    spec_q *q;
    size_t nq, capq;
    int *pset; /* what an accepted record adds to the sets */
    uint64_t *ph;
    size_t np, capp;
};

/* ---------------------------------------------------------------- loading */

static int lerr(template *t, xmlNodePtr n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* lerr - a load error at the line of node n */
static int lerr(template *t, xmlNodePtr n, const char *fmt, ...)
{
    if (t->err->len)
        return -1;
    sbuf_printf(t->err, "%s:%ld: ", t->file, n ? xmlGetLineNo(n) : 0L);
    va_list ap;
    va_start(ap, fmt);
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sbuf_adds(t->err, buf);
    return -1;
}

static char *attr(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    if (!v)
        return NULL;
    char *s = xstrdup((const char *)v);
    xmlFree(v);
    return s;
}

static int attr_int(xmlNodePtr n, const char *name, int dflt)
{
    char *v = attr(n, name);
    if (!v)
        return dflt;
    int i = atoi(v);
    free(v);
    return i;
}

static bool attr_is(xmlNodePtr n, const char *name, const char *value)
{
    char *v = attr(n, name);
    bool r = v && strcmp(v, value) == 0;
    free(v);
    return r;
}

static bool is(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

/* elements - the element children of n */
static xmlNodePtr first_el(xmlNodePtr n)
{
    for (n = n ? n->children : NULL; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE)
            return n;
    return NULL;
}

static xmlNodePtr next_el(xmlNodePtr n)
{
    for (n = n->next; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE)
            return n;
    return NULL;
}

static const char *setting_value(template *t, xmlNodePtr where, const char *name)
{
    const char *v = cfg_get(t->set->cfg, t->settings_section, name);
    if (v)
        return v;
    for (int i = 0; i < t->nsettings; i++)
        if (strcmp(t->setting_names[i], name) == 0)
            return t->setting_defaults[i];
    lerr(t, where,
         "setting \"%s\" has no value: set %s in [%s] of sagebridge.conf or give it a "
         "default in <settings>",
         name, name, t->settings_section);
    return NULL;
}

static lookup_table *find_lookup(template *t, const char *name)
{
    for (int i = 0; i < t->nlookups; i++)
        if (strcmp(t->lookups[i].name, name) == 0)
            return t->lookups[i].lk;
    return NULL;
}

static node *compile(template *t, xmlNodePtr x, int group);

/* compile_kids - every element child of x as an expression */
static int compile_kids(template *t, node *n, xmlNodePtr x, int group, int min)
{
    for (xmlNodePtr k = first_el(x); k; k = next_el(k)) {
        if (is(k, "else"))
            continue;
        node *c = compile(t, k, group);
        if (!c)
            return -1;
        n->kids = xrealloc(n->kids, (size_t)(n->nkids + 1) * sizeof *n->kids);
        n->kids[n->nkids++] = c;
    }
    if (n->nkids < min)
        return lerr(t, x, "<%s> needs at least %d expression%s inside", (const char *)x->name, min,
                    min == 1 ? "" : "s");
    return 0;
}

static char *text_of(xmlNodePtr x)
{
    xmlChar *c = xmlNodeGetContent(x);
    char *s = xstrdup(c ? (const char *)c : "");
    xmlFree(c);
    return s;
}

/* split_words - "CA OR WA" or "CA,OR,WA" into words */
static void split_words(const char *s, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    while (*s) {
        size_t skip = strspn(s, " ,\t\n");
        s += skip;
        size_t len = strcspn(s, " ,\t\n");
        if (!len)
            break;
        *out = xrealloc(*out, (size_t)(*n + 1) * sizeof **out);
        (*out)[(*n)++] = strndup(s, len);
        s += len;
    }
}

static int tz_valid(const char *tz)
{
    if (strcmp(tz, "UTC") == 0 || strcmp(tz, "Etc/UTC") == 0)
        return 1;
    if (strstr(tz, ".."))
        return 0;
    char p[512];
    snprintf(p, sizeof p, "/usr/share/zoneinfo/%s", tz);
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* compile - one expression element */
static node *compile(template *t, xmlNodePtr x, int group)
{
    node *n = xcalloc(1, sizeof *n);
    n->line = (int)xmlGetLineNo(x);
    n->group = group;
    const char *name = (const char *)x->name;
    rec_schema *schema = t->set->schema;
    char *a = NULL;
    int ok = 0;

    if (is(x, "field")) {
        n->t = N_FIELD;
        n->s = attr(x, "path");
        n->slot = schema_slot(schema, REC_HEADER, n->s);
    } else if (is(x, "item")) {
        n->t = N_ITEM;
        n->s = attr(x, "path");
        if (group < 0)
            ok = lerr(t, x,
                      "<item path=\"%s\"/> is used outside a table or check with for-each, "
                      "or a <sum>: there is no current item",
                      n->s);
        else
            n->slot = schema_slot(schema, group, n->s);
    } else if (is(x, "const")) {
        n->t = N_CONST;
        n->s = attr(x, "value");
        if (!n->s)
            n->s = text_of(x);
        n->slen = strlen(n->s);
    } else if (is(x, "setting")) {
        n->t = N_CONST;
        a = attr(x, "name");
        const char *v = setting_value(t, x, a);
        n->s = xstrdup(v ? v : "");
        n->slen = strlen(n->s);
        if (!v)
            ok = -1;
    } else if (is(x, "var")) {
        n->t = N_VAR;
        a = attr(x, "name");
        n->i1 = -1;
        for (int i = 0; i < t->nlets; i++)
            if (strcmp(t->lets[i].name, a) == 0)
                n->i1 = i;
        if (n->i1 < 0)
            ok = lerr(t, x, "<var name=\"%s\"/>: no <let name=\"%s\"> is defined before this point",
                      a, a);
    } else if (is(x, "ref")) {
        n->t = N_REF;
        char *tb = attr(x, "table"), *col = attr(x, "column");
        n->i1 = n->i2 = -1;
        for (int i = 0; i < t->ntables; i++)
            if (strcmp(t->tables[i].name, tb) == 0 && t->tables[i].group < 0)
                for (int j = 0; j < t->tables[i].ncols; j++)
                    if (strcmp(t->tables[i].cols[j].name, col) == 0)
                        n->i1 = i, n->i2 = j;
        if (n->i1 < 0)
            ok = lerr(t, x,
                      "<ref table=\"%s\" column=\"%s\"/>: refer to a column of an earlier "
                      "table without for-each",
                      tb, col);
        free(tb);
        free(col);
    } else if (is(x, "line-number")) {
        n->t = N_LINENO;
        if (group < 0)
            ok = lerr(t, x, "<line-number/> needs a table with for-each");
    } else if (is(x, "coalesce")) {
        n->t = N_COALESCE;
        ok = compile_kids(t, n, x, group, 1);
    } else if (is(x, "concat")) {
        n->t = N_CONCAT;
        n->s = attr(x, "sep");
        if (!n->s)
            n->s = xstrdup("");
        ok = compile_kids(t, n, x, group, 1);
    } else if (is(x, "word")) {
        n->t = N_WORD;
        a = attr(x, "which");
        n->i1 = !a || !strcmp(a, "first") ? W_FIRST
                : !strcmp(a, "last")      ? W_LAST
                : !strcmp(a, "but-first") ? W_BUT_FIRST
                                          : W_BUT_LAST;
        ok = compile_kids(t, n, x, group, 1);
    } else if (is(x, "trim") || is(x, "upper") || is(x, "lower") || is(x, "digits") ||
               is(x, "neg")) {
        n->t = is(x, "trim")     ? N_TRIM
               : is(x, "upper")  ? N_UPPER
               : is(x, "lower")  ? N_LOWER
               : is(x, "digits") ? N_DIGITS
                                 : N_NEG;
        ok = compile_kids(t, n, x, group, 1);
    } else if (is(x, "pad-left")) {
        n->t = N_PADLEFT;
        n->i1 = attr_int(x, "width", 0);
        n->msg = attr(x, "char"); /* one character, perhaps several bytes */
        if (!n->msg || !*n->msg) {
            free(n->msg);
            n->msg = xstrdup(" ");
        }
        ok = compile_kids(t, n, x, group, 1);
    } else if (is(x, "date")) {
        n->t = N_DATE;
        n->s = attr(x, "format");
        if (!n->s)
            n->s = xstrdup("%Y-%m-%d");
        char *tz = attr(x, "tz");
        char *tzs = attr(x, "tz-setting");
        const char *zone = tz ? tz : "UTC";
        if (tzs)
            zone = setting_value(t, x, tzs);
        bool named = tz || tzs; /* a <date> without a zone converts to UTC, whatever TZ is */
        if (!zone) {
            ok = -1;
        } else if (!tz_valid(zone)) {
            ok = lerr(t, x,
                      "time zone \"%s\" is unknown: use a name from /usr/share/zoneinfo, "
                      "e.g. America/Chicago, or UTC",
                      zone);
        } else if (named && t->set->tz && strcmp(t->set->tz, zone) != 0) {
            ok = lerr(t, x,
                      "time zone \"%s\" differs from \"%s\" used elsewhere: one time zone "
                      "per installation",
                      zone, t->set->tz);
        } else if (named && !t->set->tz) {
            t->set->tz = xstrdup(zone);
        }
        n->flag = named && zone && strcmp(zone, "UTC") != 0 && strcmp(zone, "Etc/UTC") != 0;
        free(tz);
        free(tzs);
        if (!ok)
            ok = compile_kids(t, n, x, group, 1);
    } else if (is(x, "round")) {
        n->t = N_ROUND;
        n->i1 = attr_int(x, "scale", 0);
        n->flag = attr_is(x, "trim", "yes");
        if (n->i1 < 0 || n->i1 > DEC_MAX_SCALE)
            ok = lerr(t, x, "scale must be 0..%d", DEC_MAX_SCALE);
        else
            ok = compile_kids(t, n, x, group, 1);
    } else if (is(x, "add") || is(x, "sub") || is(x, "mul")) {
        n->t = is(x, "add") ? N_ADD : is(x, "sub") ? N_SUB : N_MUL;
        ok = compile_kids(t, n, x, group, 1);
    } else if (is(x, "sum")) {
        n->t = N_SUM;
        a = attr(x, "for-each");
        if (group >= 0)
            ok = lerr(t, x, "<sum> inside a per-item context is not supported");
        else {
            n->group = schema_group(schema, a);
            ok = compile_kids(t, n, x, n->group, 1);
        }
    } else if (is(x, "lookup")) {
        n->t = N_LOOKUP;
        a = attr(x, "table");
        n->lk = find_lookup(t, a);
        char *m = attr(x, "on-missing");
        n->i1 = !m || !strcmp(m, "empty") ? LK_EMPTY : !strcmp(m, "keep") ? LK_KEEP : LK_ERROR;
        n->s = attr(x, "code");
        n->msg = attr(x, "message");
        free(m);
        if (!n->lk)
            ok = lerr(t, x, "lookup table \"%s\" is not declared in <lookups>", a);
        else
            ok = compile_kids(t, n, x, group, 1);
        xmlNodePtr e;
        for (e = first_el(x); e && !ok; e = next_el(e))
            if (is(e, "else")) {
                xmlNodePtr k = first_el(e);
                n->otherwise = k ? compile(t, k, group) : NULL;
                if (!n->otherwise)
                    ok = -1;
            }
        if (!ok && n->nkids != 1)
            ok = lerr(t, x, "<lookup> takes one key expression (and an optional <else>)");
    } else if (is(x, "choose")) {
        n->t = N_CHOOSE;
        for (xmlNodePtr w = first_el(x); w && !ok; w = next_el(w)) {
            xmlNodePtr body = first_el(w);
            if (is(w, "otherwise")) {
                n->otherwise = body ? compile(t, body, group) : NULL;
                ok = n->otherwise ? 0 : -1;
                continue;
            }
            n->whens = xrealloc(n->whens, (size_t)(n->nwhens + 1) * sizeof *n->whens);
            when *wh = &n->whens[n->nwhens++];
            memset(wh, 0, sizeof *wh);
            node *subj = xcalloc(1, sizeof *subj);
            subj->line = (int)xmlGetLineNo(w);
            char *f = attr(w, "field"), *it = attr(w, "item"), *v = attr(w, "var");
            if (f) {
                subj->t = N_FIELD;
                subj->s = f;
                subj->slot = schema_slot(schema, REC_HEADER, f);
            } else if (it && group >= 0) {
                subj->t = N_ITEM;
                subj->s = it;
                subj->group = group;
                subj->slot = schema_slot(schema, group, it);
            } else if (v) {
                subj->t = N_VAR;
                subj->i1 = -1;
                for (int i = 0; i < t->nlets; i++)
                    if (strcmp(t->lets[i].name, v) == 0)
                        subj->i1 = i;
                if (subj->i1 < 0)
                    ok = lerr(t, w, "<when var=\"%s\">: no such <let>", v);
                free(v);
            } else {
                ok = lerr(t, w, "<when> needs field=, var= or (inside for-each) item=");
            }
            if (it && !subj->s)
                free(it);
            wh->subject = subj;
            char *eq = attr(w, "equals"), *in = attr(w, "in"), *em = attr(w, "empty");
            if (eq) {
                wh->test = T_EQUALS;
                wh->words = xmalloc(sizeof *wh->words);
                wh->words[0] = eq;
                wh->nwords = 1;
            } else if (in) {
                wh->test = T_IN;
                split_words(in, &wh->words, &wh->nwords);
                free(in);
            } else if (em) {
                wh->test = strcmp(em, "no") == 0 ? T_NOT_EMPTY : T_EMPTY;
                free(em);
            } else if (!ok) {
                ok = lerr(t, w, "<when> needs equals=, in= or empty=");
            }
            if (!ok) {
                wh->then = body ? compile(t, body, group) : NULL;
                if (!wh->then)
                    ok = body ? -1 : lerr(t, w, "<when> needs an expression inside");
            }
        }
    } else if (is(x, "key-of")) {
        n->t = N_KEY_OF;
        n->s = attr(x, "kind");
        ok = compile_kids(t, n, x, group, 1);
    } else if (is(x, "sequence")) {
        n->t = N_SEQUENCE;
        n->s = attr(x, "prefix");
        if (!n->s)
            n->s = xstrdup("");
        n->i1 = attr_int(x, "width", 10);
        n->i2 = t->ncounters++;
    } else if (is(x, "zero")) {
        n->t = C_ZERO;
        ok = compile_kids(t, n, x, group, 1);
    } else if (is(x, "not-empty") || is(x, "positive") || is(x, "non-negative") ||
               is(x, "unique")) {
        n->t = is(x, "not-empty")      ? C_NOT_EMPTY
               : is(x, "positive")     ? C_POSITIVE
               : is(x, "non-negative") ? C_NON_NEGATIVE
                                       : C_UNIQUE;
        if (n->t == C_UNIQUE)
            n->i2 = t->nhsets++;
        ok = compile_kids(t, n, x, group, 1);
    } else if (is(x, "within")) {
        n->t = C_WITHIN;
        a = attr(x, "tolerance");
        n->s = a ? a : xstrdup("0");
        a = NULL;
        decimal d;
        if (dec_parse(n->s, strlen(n->s), &d) != DEC_OK)
            ok = lerr(t, x, "tolerance \"%s\" is not a decimal number", n->s);
        else
            ok = compile_kids(t, n, x, group, 2);
    } else if (is(x, "min-items")) {
        n->t = C_MIN_ITEMS;
        a = attr(x, "for-each");
        n->group = schema_group(schema, a);
        n->i1 = attr_int(x, "min", 1);
    } else {
        ok = lerr(t, x, "<%s> is not an operation of the template language", name);
    }
    free(a);
    if (ok) {
        /* the partial node is owned by the template's error path: leak-free enough to free here */
        free(n->s);
        free(n->kids);
        free(n);
        return NULL;
    }
    return n;
}

static void node_free(node *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    for (int i = 0; i < n->nwhens; i++) {
        node_free(n->whens[i].subject);
        node_free(n->whens[i].then);
        for (int j = 0; j < n->whens[i].nwords; j++)
            free(n->whens[i].words[j]);
        free(n->whens[i].words);
    }
    free(n->whens);
    node_free(n->otherwise);
    free(n->kids);
    free(n->s);
    free(n->msg);
    free(n);
}

static void jnode_free(jnode *j);

static void tpl_free(template *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->nlets; i++) {
        free(t->lets[i].name);
        node_free(t->lets[i].expr);
    }
    free(t->lets);
    for (int i = 0; i < t->nchecks; i++) {
        free(t->checks[i].code);
        free(t->checks[i].field);
        free(t->checks[i].message);
        node_free(t->checks[i].cond);
    }
    free(t->checks);
    for (int i = 0; i < t->ntables; i++) {
        for (int j = 0; j < t->tables[i].ncols; j++) {
            free(t->tables[i].cols[j].name);
            node_free(t->tables[i].cols[j].expr);
            node_free(t->tables[i].cols[j].fallback);
        }
        free(t->tables[i].cols);
        free(t->tables[i].colnames);
        free(t->tables[i].name);
    }
    free(t->tables);
    free(t->descs);
    for (int i = 0; i < t->nopdefs; i++) {
        opdef *o = &t->opdefs[i];
        for (int k = 0; k < o->n; k++)
            jnode_free(o->members[k]);
        free(o->members);
        for (int k = 0; k < o->nitems; k++)
            jnode_free(o->items[k]);
        free(o->items);
        free(o->lines);
        node_free(o->when);
        free(o->op);
        free(o->method);
        free(o->path);
        free(o->collect);
    }
    free(t->opdefs);
    free(t->opdescs);
    node_free(t->currency);
    for (int i = 0; i < t->ntotals; i++) {
        node_free(t->totals[i]);
        free((char *)t->total_names[i]);
    }
    free(t->totals);
    free(t->total_names);
    for (int i = 0; i < t->nlookups; i++) {
        free(t->lookups[i].name);
        lk_free(t->lookups[i].lk);
    }
    free(t->lookups);
    for (int i = 0; i < t->ndetect; i++)
        free(t->detect[i]);
    free(t->detect);
    for (int i = 0; i < t->nsettings; i++) {
        free(t->setting_names[i]);
        free(t->setting_defaults[i]);
    }
    free(t->setting_names);
    free(t->setting_defaults);
    free((char *)t->out.prefix);
    free((char *)t->out.xml_root);
    free((char *)t->out.xml_record);
    free((char *)t->out.xml_ns);
    free(t->settings_section);
    free(t->key_col);
    free(t->name);
    free(t->kind);
    free(t->path);
    free(t->sha);
    free(t);
}

/* join_dir - resolve a file named in a template relative to the template's folder */
static char *join_dir(const char *tpl_path, const char *file)
{
    if (file[0] == '/')
        return xstrdup(file);
    const char *slash = strrchr(tpl_path, '/');
    sbuf b = {0};
    if (slash)
        sbuf_add(&b, tpl_path, (size_t)(slash - tpl_path) + 1);
    sbuf_adds(&b, file);
    return b.p;
}

typedef struct {
    sbuf *err;
    const char *file;
} xml_err_ctx;

static void collect_xml_error(void *ctx, const xmlError *e)
{
    xml_err_ctx *c = ctx;
    if (c->err->len || !e)
        return;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", e->message ? e->message : "invalid XML");
    msg[strcspn(msg, "\n")] = '\0';
    sbuf_printf(c->err, "%s:%d: %s", c->file, e->line, msg);
}

static void collect_xml_error_cb(void *ctx, xmlErrorPtr e)
{
    collect_xml_error(ctx, e);
}

/* load_template_schema - xsd/template.xsd, once per set */
static int load_template_schema(tpl_set *s, sbuf *err)
{
    if (s->tschema)
        return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/template.xsd", s->xsd_dir);
    xml_err_ctx ec = {err, path};
    xmlSchemaParserCtxtPtr pc = xmlSchemaNewParserCtxt(path);
    xmlSchemaSetParserStructuredErrors(pc, collect_xml_error_cb, &ec);
    s->tschema = xmlSchemaParse(pc);
    xmlSchemaFreeParserCtxt(pc);
    if (!s->tschema) {
        if (!err->len)
            sbuf_printf(err, "%s: cannot load the template schema (is the xsd folder installed?)",
                        path);
        return -1;
    }
    return 0;
}

/* parse_validated - read a template file and check it against the template schema */
static xmlDocPtr parse_validated(tpl_set *s, const char *path, sbuf *err)
{
    if (load_template_schema(s, err) != 0)
        return NULL;
    xml_err_ctx ec = {err, path};
    xmlSetStructuredErrorFunc(&ec, collect_xml_error_cb);
    xmlDocPtr doc = xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOCDATA);
    xmlSetStructuredErrorFunc(NULL, NULL);
    if (!doc) {
        if (!err->len)
            sbuf_printf(err, "%s: cannot read the template: %s", path, strerror(errno));
        return NULL;
    }
    xmlSchemaValidCtxtPtr vc = xmlSchemaNewValidCtxt(s->tschema);
    xmlSchemaSetValidStructuredErrors(vc, collect_xml_error_cb, &ec);
    int rc = xmlSchemaValidateDoc(vc, doc);
    xmlSchemaFreeValidCtxt(vc);
    if (rc != 0) {
        if (!err->len)
            sbuf_printf(err, "%s: the template does not follow xsd/template.xsd", path);
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

static void jnode_free(jnode *j)
{
    if (!j)
        return;
    for (int i = 0; i < j->nkids; i++)
        jnode_free(j->kids[i]);
    free(j->kids);
    free(j->name);
    free(j->from);
    node_free(j->expr);
    free(j);
}

/* load_members - <member>/<object> children of x into kids */
static int load_members(template *t, xmlNodePtr x, jnode ***kids, int *n)
{
    for (xmlNodePtr c = first_el(x); c; c = next_el(c)) {
        if (is(c, "lines") || is(c, "when"))
            continue;
        jnode *j = xcalloc(1, sizeof *j);
        j->name = attr(c, "name");
        *kids = xrealloc(*kids, (size_t)(*n + 1) * sizeof **kids);
        (*kids)[(*n)++] = j;
        if (is(c, "object") || is(c, "list")) {
            j->kind = is(c, "object") ? J_OBJECT : J_LIST;
            if (load_members(t, c, &j->kids, &j->nkids) != 0)
                return -1;
            if (j->kind == J_LIST && (!j->nkids || j->kids[0]->kind != J_MEMBER))
                return lerr(t, c,
                            "<list name=\"%s\"> starts with the <member> that decides "
                            "whether it is written",
                            j->name);
            continue;
        }
        j->kind = J_MEMBER;
        char *ty = attr(c, "type");
        j->type = !ty || !strcmp(ty, "string") ? JT_STRING
                  : !strcmp(ty, "number")      ? JT_NUMBER
                  : !strcmp(ty, "boolean")     ? JT_BOOL
                                               : JT_ID;
        free(ty);
        j->from = attr(c, "from");
        if (j->type == JT_ID && !j->from)
            return lerr(t, c, "<member type=\"id\"> needs from=\"/Route/Exists/Key/\"");
        xmlNodePtr e = first_el(c);
        if (!e)
            return lerr(t, c, "<member name=\"%s\"> needs an expression", j->name);
        j->expr = compile(t, e, -1);
        if (!j->expr)
            return -1;
    }
    return 0;
}

static int load_operation(template *t, xmlNodePtr x)
{
    t->opdefs = xrealloc(t->opdefs, (size_t)(t->nopdefs + 1) * sizeof *t->opdefs);
    opdef *o = &t->opdefs[t->nopdefs++];
    memset(o, 0, sizeof *o);
    o->op = attr(x, "op");
    o->method = attr(x, "method");
    o->path = attr(x, "path");
    o->collect = attr(x, "collect");
    o->d.chunk = attr_int(x, "chunk", 500);
    o->group_slot = -1;
    char *gb = attr(x, "group-by");
    if (gb) {
        o->group_slot = schema_slot(t->set->schema, REC_HEADER, gb);
        o->d.grouped = true;
        free(gb);
    }
    char *cs = attr(x, "chunk-setting");
    if (cs) {
        const char *v = setting_value(t, x, cs);
        free(cs);
        if (!v)
            return -1;
        o->d.chunk = atoi(v);
        if (o->d.chunk < 1 || o->d.chunk > 100000)
            return lerr(t, x, "chunk size \"%s\" must be a number from 1 to 100000", v);
    }
    o->d.op = o->op;
    o->d.method = o->method;
    o->d.path = o->path;
    o->d.collect = o->collect;
    for (xmlNodePtr c = first_el(x); c; c = next_el(c)) {
        if (is(c, "lines")) {
            o->lines = attr(c, "name");
            o->d.lines = o->lines;
            if (load_members(t, c, &o->items, &o->nitems) != 0)
                return -1;
        } else if (is(c, "when")) {
            xmlNodePtr k = first_el(c);
            o->when = k ? compile(t, k, -1) : NULL;
            if (!o->when)
                return -1;
        } else if (is(c, "member") || is(c, "object")) {
            /* handled by load_members below, which skips the rest */
        }
    }
    if ((o->lines || o->when) && !o->d.grouped)
        return lerr(t, x, "<lines> and <when> need group-by on the operation");
    return load_members(t, x, &o->members, &o->n);
}

static bool plain_expr(const template *t, const node *n, int depth);

static int load_table(template *t, xmlNodePtr x)
{
    t->tables = xrealloc(t->tables, (size_t)(t->ntables + 1) * sizeof *t->tables);
    table *tb = &t->tables[t->ntables];
    memset(tb, 0, sizeof *tb);
    tb->name = attr(x, "name");
    char *fe = attr(x, "for-each");
    tb->group = fe ? schema_group(t->set->schema, fe) : -1;
    free(fe);
    t->ntables++; /* visible to <ref> of later tables only once complete: see below */
    for (xmlNodePtr c = first_el(x); c; c = next_el(c)) {
        tb->cols = xrealloc(tb->cols, (size_t)(tb->ncols + 1) * sizeof *tb->cols);
        column *col = &tb->cols[tb->ncols];
        memset(col, 0, sizeof *col);
        col->name = attr(c, "name");
        col->max = attr_int(c, "max", 0);
        col->cut = attr_is(c, "too-long", "cut");
        col->unique = attr_is(c, "unique", "file");
        if (col->unique)
            col->uniq_id = t->nuniq++;
        tb->ncols++;
        for (xmlNodePtr e = first_el(c); e; e = next_el(e)) {
            if (is(e, "fallback")) {
                xmlNodePtr k = first_el(e);
                col->fallback = k ? compile(t, k, tb->group) : NULL;
                if (!col->fallback)
                    return k ? -1 : lerr(t, e, "<fallback> needs an expression inside");
            } else if (!col->expr) {
                col->expr = compile(t, e, tb->group);
                if (!col->expr)
                    return -1;
            }
        }
        if (!col->expr)
            return lerr(t, c, "column %s has no expression", col->name);
        col->plain =
            plain_expr(t, col->expr, 0) && (!col->fallback || plain_expr(t, col->fallback, 0));
        if (col->fallback && !col->unique && !col->max)
            return lerr(
                t, c, "column %s: <fallback> applies only with unique=\"file\" or max=", col->name);
    }
    tb->colnames = xmalloc((size_t)(tb->ncols + 1) * sizeof *tb->colnames);
    for (int j = 0; j < tb->ncols; j++)
        tb->colnames[j] = tb->cols[j].name;
    return 0;
}

/* plain_expr - can this expression's value never hold a control character?  (Then the
 * column skips that check: numbers, dates, sequences and constants are most columns.) */
static bool plain_expr(const template *t, const node *n, int depth)
{
    if (!n || depth > 32)
        return false;
    switch (n->t) {
    case N_CONST:
        return xml_forbidden(n->s, n->slen) == n->slen;
    case N_ROUND:
    case N_ADD:
    case N_SUB:
    case N_MUL:
    case N_NEG:
    case N_SUM:
    case N_DATE:
    case N_SEQUENCE:
    case N_LINENO:
    case N_DIGITS:
        return true;
    case N_PADLEFT:
        return n->msg && xml_forbidden(n->msg, strlen(n->msg)) == strlen(n->msg) &&
               plain_expr(t, n->kids[0], depth + 1);
    case N_UPPER:
    case N_LOWER:
    case N_TRIM:
        return plain_expr(t, n->kids[0], depth + 1);
    case N_VAR:
        return n->i1 >= 0 && n->i1 < t->nlets && plain_expr(t, t->lets[n->i1].expr, depth + 1);
    default:
        return false; /* fields, lookups, choices: from the data */
    }
}

/* build - compile the validated document into t */
static int build(template *t, xmlNodePtr root)
{
    t->name = attr(root, "name");
    t->kind = attr(root, "kind");
    t->settings_section = attr(root, "settings-section");
    if (!t->settings_section)
        t->settings_section = xstrdup("sage");
    t->key_slot = -1;
    for (xmlNodePtr x = first_el(root); x; x = next_el(x)) {
        if (is(x, "detect")) {
            for (xmlNodePtr h = first_el(x); h; h = next_el(h)) {
                t->detect = xrealloc(t->detect, (size_t)(t->ndetect + 1) * sizeof *t->detect);
                t->detect[t->ndetect++] = attr(h, "key");
            }
        } else if (is(x, "key")) {
            char *p = attr(x, "path");
            t->key_slot = schema_slot(t->set->schema, REC_HEADER, p);
            t->key_col = attr(x, "column");
            free(p);
        } else if (is(x, "settings")) {
            for (xmlNodePtr h = first_el(x); h; h = next_el(h)) {
                int i = t->nsettings++;
                t->setting_names =
                    xrealloc(t->setting_names, (size_t)t->nsettings * sizeof(char *));
                t->setting_defaults =
                    xrealloc(t->setting_defaults, (size_t)t->nsettings * sizeof(char *));
                t->setting_names[i] = attr(h, "name");
                t->setting_defaults[i] = attr(h, "default");
                if (!t->setting_defaults[i])
                    t->setting_defaults[i] = xstrdup("");
            }
        } else if (is(x, "lookups")) {
            for (xmlNodePtr h = first_el(x); h; h = next_el(h)) {
                char *file = attr(h, "file");
                char *full = join_dir(t->path, file);
                sbuf e = {0};
                lookup_table *lk = lk_load(full, &e);
                if (!lk) {
                    lerr(t, h, "lookup \"%s\": %s", file, sbuf_str(&e));
                    sbuf_free(&e);
                    free(file);
                    free(full);
                    return -1;
                }
                free(file);
                free(full);
                t->lookups = xrealloc(t->lookups, (size_t)(t->nlookups + 1) * sizeof *t->lookups);
                t->lookups[t->nlookups].name = attr(h, "name");
                t->lookups[t->nlookups++].lk = lk;
            }
        } else if (is(x, "let")) {
            xmlNodePtr k = first_el(x);
            node *e = k ? compile(t, k, -1) : NULL;
            if (!e)
                return k ? -1 : lerr(t, x, "<let> needs an expression");
            t->lets = xrealloc(t->lets, (size_t)(t->nlets + 1) * sizeof *t->lets);
            t->lets[t->nlets].name = attr(x, "name");
            t->lets[t->nlets++].expr = e;
        } else if (is(x, "checks")) {
            for (xmlNodePtr c = first_el(x); c; c = next_el(c)) {
                char *fe = attr(c, "for-each");
                int g = fe ? schema_group(t->set->schema, fe) : -1;
                free(fe);
                xmlNodePtr k = first_el(c);
                node *cond = k ? compile(t, k, g) : NULL;
                if (!cond)
                    return k ? -1 : lerr(t, c, "<check> needs a condition");
                if (cond->t < C_NOT_EMPTY) {
                    node_free(cond);
                    return lerr(t, k,
                                "<%s> is not a condition: use not-empty, positive, "
                                "non-negative, within, unique or min-items",
                                (const char *)k->name);
                }
                t->checks = xrealloc(t->checks, (size_t)(t->nchecks + 1) * sizeof *t->checks);
                check *ck = &t->checks[t->nchecks++];
                ck->code = attr(c, "code");
                ck->field = attr(c, "field");
                ck->message = attr(c, "message");
                ck->group = g;
                ck->cond = cond;
            }
        } else if (is(x, "totals")) {
            for (xmlNodePtr c = first_el(x); c; c = next_el(c)) {
                xmlNodePtr k = first_el(c);
                node *e = k ? compile(t, k, -1) : NULL;
                if (!e)
                    return k ? -1 : lerr(t, c, "<%s> needs an expression", (const char *)c->name);
                if (is(c, "currency")) {
                    t->currency = e;
                    continue;
                }
                t->totals = xrealloc(t->totals, (size_t)(t->ntotals + 1) * sizeof *t->totals);
                t->total_names =
                    xrealloc(t->total_names, (size_t)(t->ntotals + 1) * sizeof *t->total_names);
                t->total_names[t->ntotals] = attr(c, "name");
                t->totals[t->ntotals++] = e;
            }
        } else if (is(x, "operations")) {
            t->out.prefix = attr(x, "prefix");
            for (xmlNodePtr o = first_el(x); o; o = next_el(o))
                if (load_operation(t, o) != 0)
                    return -1;
        } else if (is(x, "output")) {
            t->out.prefix = attr(x, "prefix");
            t->out.xml_root = attr(x, "root");
            t->out.xml_record = attr(x, "record");
            t->out.xml_ns = attr(x, "namespace");
            for (xmlNodePtr tb = first_el(x); tb; tb = next_el(tb))
                if (load_table(t, tb) != 0)
                    return -1;
        }
    }
    t->key_ci = -1;
    if (t->key_col) {
        for (int j = 0; t->ntables && j < t->tables[0].ncols; j++)
            if (strcmp(t->tables[0].cols[j].name, t->key_col) == 0)
                t->key_ci = j;
        if (t->key_ci < 0)
            return lerr(t, root, "<key column=\"%s\">: the first table has no such column",
                        t->key_col);
    }
    t->descs = xcalloc((size_t)t->ntables + 1, sizeof *t->descs);
    for (int i = 0; i < t->ntables; i++)
        t->descs[i] = (tpl_table_desc){t->tables[i].name, t->tables[i].ncols, t->tables[i].colnames,
                                       t->tables[i].group >= 0};
    t->out.ntables = t->ntables;
    t->out.tables = t->descs;
    t->out.ntotals = t->ntotals;
    t->out.total_names = t->total_names;
    t->opdescs = xcalloc((size_t)t->nopdefs + 1, sizeof *t->opdescs);
    for (int i = 0; i < t->nopdefs; i++)
        t->opdescs[i] = t->opdefs[i].d;
    t->out.nops = t->nopdefs;
    t->out.ops = t->opdescs;
    return 0;
}

tpl_set *tpl_set_new(const config *cfg, const char *xsd_dir)
{
    tpl_set *s = xcalloc(1, sizeof *s);
    s->cfg = cfg;
    s->xsd_dir = xstrdup(xsd_dir);
    s->schema = schema_new();
    return s;
}

void tpl_set_free(tpl_set *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        tpl_free(s->t[i]);
    free(s->t);
    schema_free(s->schema);
    if (s->tschema)
        xmlSchemaFree(s->tschema);
    free(s->xsd_dir);
    free(s->tz);
    free(s);
}

/* tpl_load - load one template into the set */
template *tpl_load(tpl_set *s, const char *path, sbuf *err)
{
    xmlDocPtr doc = parse_validated(s, path, err);
    if (!doc)
        return NULL;
    template *t = xcalloc(1, sizeof *t);
    t->set = s;
    t->err = err;
    t->file = path;
    t->path = xstrdup(path);
    t->sha = xmalloc(65);
    sha256_path(path, t->sha);
    int rc = build(t, xmlDocGetRootElement(doc));
    xmlFreeDoc(doc);
    t->err = NULL;
    t->file = NULL;
    if (rc != 0) {
        tpl_free(t);
        return NULL;
    }
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->t[i]->name, t->name) == 0) {
            sbuf_printf(err, "%s: template name \"%s\" is already used by %s", path, t->name,
                        s->t[i]->path);
            tpl_free(t);
            return NULL;
        }
    if (s->tz && strcmp(s->tz, "UTC") != 0 && strcmp(s->tz, "Etc/UTC") != 0) {
        /* localtime_r then converts to the company's zone; one zone per process */
        setenv("TZ", s->tz, 1);
        tzset();
    }
    s->t = xrealloc(s->t, (size_t)(s->n + 1) * sizeof *s->t);
    s->t[s->n++] = t;
    return t;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* tpl_load_dir - every *.xml of a folder, in name order */
int tpl_load_dir(tpl_set *s, const char *dir, sbuf *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        sbuf_printf(err, "%s: cannot open the templates folder: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 5 || strcmp(e->d_name + l - 4, ".xml") != 0)
            continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (rc == 0 && !tpl_load(s, path, err))
            rc = -1;
        free(names[i]);
    }
    free(names);
    if (rc == 0 && s->n == 0) {
        sbuf_printf(err, "%s: no templates (*.xml) in this folder", dir);
        rc = -1;
    }
    return rc;
}

template *tpl_find(const tpl_set *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->t[i]->name, name) == 0)
            return s->t[i];
    return NULL;
}

int tpl_count(const tpl_set *s)
{
    return s->n;
}

template *tpl_at(const tpl_set *s, int i)
{
    return s->t[i];
}

const rec_schema *tpl_schema(const tpl_set *s)
{
    return s->schema;
}

template *tpl_detect(const tpl_set *s, const char *kind, int ops, tpl_has_key_fn has, void *ctx)
{
    for (int i = 0; i < s->n; i++) {
        template *t = s->t[i];
        if (kind && strcmp(t->kind, kind) != 0)
            continue;
        if ((t->nopdefs > 0) != (ops != 0))
            continue;
        int all = t->ndetect > 0 || kind;
        for (int j = 0; j < t->ndetect && all; j++)
            all = has(ctx, t->detect[j]);
        if (all)
            return t;
    }
    return NULL;
}

void tpl_missing_keys(const template *t, tpl_has_key_fn has, void *ctx, sbuf *out)
{
    for (int j = 0; j < t->ndetect; j++)
        if (!has(ctx, t->detect[j])) {
            if (out->len)
                sbuf_adds(out, ", ");
            sbuf_adds(out, t->detect[j]);
        }
}

const char *tpl_name(const template *t)
{
    return t->name;
}
const char *tpl_kind(const template *t)
{
    return t->kind;
}
const char *tpl_path(const template *t)
{
    return t->path;
}
const char *tpl_sha256(const template *t)
{
    return t->sha;
}
const tpl_output_desc *tpl_output(const template *t)
{
    return &t->out;
}

int tpl_validate_file(const config *cfg, const char *xsd_dir, const char *path, sbuf *err)
{
    tpl_set *s = tpl_set_new(cfg, xsd_dir);
    int rc = tpl_load(s, path, err) ? 0 : -1;
    tpl_set_free(s);
    return rc;
}

/* ------------------------------------------------------------- evaluating */

typedef struct {
    tpl_run *run;
    const record *rec;
    tpl_result *res;
    size_t item;
    tval *cur_row;    /* the row being computed (for <ref> to this table: not allowed) */
    char within[120]; /* the two sides of the last failed <within> */
    /* the failure, when an expression fails */
    const char *code;
    char field[160];
    char msg[400];
} ectx;

static int eval_node(node *n, ectx *c, tval *out);

/* eval - a node's value as text.  Most nodes a record meets are leaves (a field, a constant):
 * those are answered here, inlined into the caller, and the rest go through eval_node's
 * switch, whose entry and exit cost more than a leaf's whole work. */
static inline int eval(node *n, ectx *c, tval *out)
{
    if (n->t == N_FIELD || n->t == N_ITEM) {
        size_t len = 0;
        const char *p =
            record_get(c->rec, n->t == N_FIELD ? REC_HEADER : n->group, c->item, n->slot, &len);
        *out = p ? (tval){p, len} : (tval){"", 0};
        return 0;
    }
    if (n->t == N_CONST) {
        *out = (tval){n->s, n->slen};
        return 0;
    }
    return eval_node(n, c, out);
}

static int efail(ectx *c, const node *n, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* spec_ask - a speculative evaluation assumes "not seen" for (set, h): noted for tpl_settle */
static void spec_ask(ectx *c, int set, uint64_t h, const char *col, tval v)
{
    struct tpl_spec *sp = c->res->spec;
    if (sp->nq == sp->capq) {
        sp->capq = sp->capq ? sp->capq * 2 : 8;
        sp->q = xrealloc(sp->q, sp->capq * sizeof *sp->q);
    }
    sp->q[sp->nq++] = (spec_q){set, h, col, v};
}

/* spec_abandon - what only the ordered evaluation may do: this result is not used */
static int spec_abandon(ectx *c)
{
    c->res->spec->abandon = true;
    return efail(c, NULL, "TEMPLATE", "evaluated again in order");
}

static void add_issue(tpl_result *r, int warning, const char *field, const char *code,
                      const char *msg)
{
    tpl_issue **v = warning ? &r->warnings : &r->errors;
    size_t *n = warning ? &r->nwarnings : &r->nerrors;
    size_t *cap = warning ? &r->cap_warn : &r->cap_err;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = xrealloc(*v, *cap * sizeof **v);
    }
    size_t fl = strlen(field), ml = strlen(msg);
    (*v)[(*n)++] =
        (tpl_issue){arena_strndup(&r->mem, field, fl), code, arena_strndup(&r->mem, msg, ml)};
}

/* field_name - "orderId" or "lineItems[2].quantity" for messages */
static void field_name(const ectx *c, const node *n, char *buf, size_t sz)
{
    const rec_schema *s = c->rec->schema;
    if (n->t == N_ITEM)
        snprintf(buf, sz, "%s[%zu].%s", schema_group_path(s, n->group), c->item, n->s);
    else if (n->s)
        snprintf(buf, sz, "%s", n->s);
    else
        buf[0] = '\0';
}

static int efail(ectx *c, const node *n, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int efail(ectx *c, const node *n, const char *code, const char *fmt, ...)
{
    c->code = code;
    if (n)
        field_name(c, n, c->field, sizeof c->field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static tval mk(ectx *c, const char *p, size_t n)
{
    return (tval){arena_strndup(&c->res->mem, p, n), n};
}

/* source_node - the field whose value a decimal came from, for messages */
static const node *source_node(const node *n)
{
    while (n && n->t != N_FIELD && n->t != N_ITEM && n->nkids == 1)
        n = n->kids[0];
    return n && (n->t == N_FIELD || n->t == N_ITEM) ? n : NULL;
}

static int eval_dec_node(node *n, ectx *c, decimal *d);

/* eval_dec - evaluate as a decimal; an empty value is 0.  What was computed before for this
 * record (a variable, a field's decimal) is answered inline; the rest is eval_dec_node. */
static inline int eval_dec(node *n, ectx *c, decimal *d)
{
    tpl_run *r = c->run;
    if (n->t == N_VAR && r->var_dec_done[n->i1]) {
        *d = r->var_dec[n->i1];
        return 0;
    }
    if (n->t == N_FIELD || (n->t == N_ITEM && r->items)) {
        const fdec *f;
        size_t at;
        if (n->t == N_FIELD) {
            f = &r->hdr;
            at = (size_t)n->slot;
        } else {
            f = &r->items[n->group];
            at = c->item * c->rec->groups[n->group].nslots + (size_t)n->slot;
        }
        if (at < f->cap && f->gen[at] == r->gen) {
            *d = f->v[at];
            return 0;
        }
    }
    return eval_dec_node(n, c, d);
}

/* arith_dec - add, sub, mul, neg and sum computed as decimals: an expression of several
 * of them is never formatted and parsed again between its steps */
static int arith_dec(node *n, ectx *c, decimal *out)
{
    decimal acc, d;
    switch (n->t) {
    case N_NEG:
        if (eval_dec(n->kids[0], c, &acc) != 0)
            return -1;
        *out = dec_neg(acc);
        return 0;
    case N_SUM: {
        size_t saved = c->item, ni = record_nitems(c->rec, n->group);
        acc = (decimal){0, 0};
        for (size_t i = 0; i < ni; i++) {
            c->item = i;
            if (eval_dec(n->kids[0], c, &d) != 0)
                return -1;
            if (dec_add(acc, d, &acc) != DEC_OK)
                return efail(c, source_node(n->kids[0]), "BAD_NUMBER", "sum overflows");
        }
        c->item = saved;
        *out = acc;
        return 0;
    }
    default: /* N_ADD, N_SUB, N_MUL */
        if (eval_dec(n->kids[0], c, &acc) != 0)
            return -1;
        for (int i = 1; i < n->nkids; i++) {
            if (eval_dec(n->kids[i], c, &d) != 0)
                return -1;
            dec_status st = n->t == N_ADD   ? dec_add(acc, d, &acc)
                            : n->t == N_SUB ? dec_sub(acc, d, &acc)
                                            : dec_mul(acc, d, &acc);
            if (st != DEC_OK)
                return efail(c, source_node(n->kids[i]), "BAD_NUMBER", "arithmetic overflow: %s",
                             dec_strerror(st));
        }
        *out = acc;
        return 0;
    }
}

static int eval_var(ectx *c, int i, tval *out);

/* parse_dec - a value's text as a decimal (empty is 0); n names the source in a message */
static int parse_dec(node *n, ectx *c, tval v, decimal *d)
{
    if (v.n == 0) {
        *d = (decimal){0, 0};
        return 0;
    }
    dec_status st = dec_parse(v.p, v.n, d);
    if (st != DEC_OK) {
        const node *src = source_node(n);
        char shown[64];
        snprintf(shown, sizeof shown, "%.*s", (int)(v.n > 40 ? 40 : v.n), v.p);
        return efail(c, src, "BAD_NUMBER",
                     "\"%s\" is %s; write it as a plain decimal such as 12.50", shown,
                     dec_strerror(st));
    }
    return 0;
}

/* fdec_fit - room for n cached values */
static void fdec_fit(fdec *f, size_t n)
{
    if (n <= f->cap)
        return;
    size_t cap = f->cap ? f->cap : 16;
    while (cap < n)
        cap *= 2;
    f->v = xrealloc(f->v, cap * sizeof *f->v);
    f->gen = xrealloc(f->gen, cap * sizeof *f->gen);
    memset(f->gen + f->cap, 0, (cap - f->cap) * sizeof *f->gen); /* gen starts at 1 */
    f->cap = cap;
}

/* field_cache - where a field's decimal is kept for this record (*at: its index) */
static fdec *field_cache(ectx *c, const node *n, size_t *at)
{
    tpl_run *r = c->run;
    const rec_schema *sc = c->rec->schema;
    if (n->t == N_FIELD) {
        fdec_fit(&r->hdr, (size_t)schema_nslots(sc, REC_HEADER));
        *at = (size_t)n->slot;
        return &r->hdr;
    }
    if (!r->items) {
        r->ngroups = schema_ngroups(sc);
        r->items = xcalloc((size_t)r->ngroups + 1, sizeof *r->items);
    }
    size_t ns = (size_t)schema_nslots(sc, n->group);
    fdec *f = &r->items[n->group];
    fdec_fit(f, (c->item + 1) * ns);
    *at = c->item * ns + (size_t)n->slot;
    return f;
}

/* eval_dec_node - evaluate as a decimal; an empty value is 0 */
static int eval_dec_node(node *n, ectx *c, decimal *d)
{
    switch (n->t) {
    case N_ADD:
    case N_SUB:
    case N_MUL:
    case N_NEG:
    case N_SUM:
        return arith_dec(n, c, d);
    case N_VAR: { /* a variable's value as a decimal is kept too: totals and checks reuse it */
        tpl_run *r = c->run;
        int i = n->i1;
        if (!r->var_dec_done[i]) {
            if (r->var_done[i]) {
                if (parse_dec(r->t->lets[i].expr, c, r->var_val[i], &r->var_dec[i]) != 0)
                    return -1;
            } else {
                size_t item = c->item;
                if (eval_dec(r->t->lets[i].expr, c, &r->var_dec[i]) != 0)
                    return -1;
                c->item = item;
            }
            r->var_dec_done[i] = true;
        }
        *d = r->var_dec[i];
        return 0;
    }
    case N_FIELD:
    case N_ITEM: {
        size_t at;
        fdec *f = field_cache(c, n, &at);
        if (f->gen[at] == c->run->gen) {
            *d = f->v[at];
            return 0;
        }
        tval v;
        if (eval(n, c, &v) != 0 || parse_dec(n, c, v, d) != 0)
            return -1;
        f->v[at] = *d;
        f->gen[at] = c->run->gen;
        return 0;
    }
    default: {
        tval v;
        if (eval(n, c, &v) != 0)
            return -1;
        return parse_dec(n, c, v, d);
    }
    }
}

static tval dec_text(ectx *c, decimal d)
{
    char buf[DEC_TEXT_MAX];
    size_t n = dec_format(d, d.scale, false, buf, sizeof buf);
    return mk(c, buf, n);
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* digits_at - exactly k ASCII digits at p (no sign, no blank) */
static int digits_at(const char *p, int k, int *v)
{
    int x = 0;
    for (int i = 0; i < k; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        x = x * 10 + (p[i] - '0');
    }
    *v = x;
    return 0;
}

/* parse_iso - ISO 8601 date or date-time; has_time/has_off tell what was there */
static int parse_iso(const char *s, size_t n, struct tm *tm, int *off_min, int *has_time,
                     int *has_off)
{
    char buf[64];
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(tm, 0, sizeof *tm);
    *off_min = 0;
    *has_time = *has_off = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (n < 10 || digits_at(buf, 4, &y) || buf[4] != '-' || digits_at(buf + 5, 2, &mo) ||
        buf[7] != '-' || digits_at(buf + 8, 2, &d))
        return -1;
    const char *p = buf + 10;
    if (*p == 'T' || *p == ' ') {
        if (digits_at(p + 1, 2, &h) || p[3] != ':' || digits_at(p + 4, 2, &mi))
            return -1;
        p += 6;
        if (*p == ':') {
            if (digits_at(p + 1, 2, &sec))
                return -1;
            p += 3;
            if (*p == '.' || *p == ',') {
                p++;
                while (*p >= '0' && *p <= '9')
                    p++;
            }
        }
        *has_time = 1;
        if (*p == 'Z' || *p == 'z') {
            *has_off = 1;
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1, oh = 0, om = 0;
            p++;
            if (digits_at(p, 2, &oh))
                return -1;
            p += 2;
            if (*p == ':')
                p++;
            if (*p >= '0' && *p <= '9') {
                if (digits_at(p, 2, &om))
                    return -1;
                p += 2;
            }
            *has_off = 1;
            *off_min = sign * (oh * 60 + om);
        }
    }
    if (*p != '\0')
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm->tm_year = y - 1900;
    tm->tm_mon = mo - 1;
    tm->tm_mday = d;
    tm->tm_hour = h;
    tm->tm_min = mi;
    tm->tm_sec = sec;
    return 0;
}

static int eval_date(node *n, ectx *c, tval *out)
{
    tval v;
    if (eval(n->kids[0], c, &v) != 0)
        return -1;
    if (v.n == 0) {
        *out = v;
        return 0;
    }
    struct tm tm;
    int off, has_time, has_off;
    if (parse_iso(v.p, v.n, &tm, &off, &has_time, &has_off) != 0) {
        char shown[64];
        snprintf(shown, sizeof shown, "%.*s", (int)(v.n > 40 ? 40 : v.n), v.p);
        return efail(c, source_node(n->kids[0]), "BAD_DATE",
                     "\"%s\" is not an ISO 8601 date such as 2026-11-01T14:22:05Z", shown);
    }
    /* counted on from the first of the month, 2026-02-30 is in March: a changed day means no
     * such date.  (utc_time and utc_tm are timegm and gmtime_r without the C library's time
     * zone lock and lookups: a third of the cost of a date, once per order.) */
    struct tm asked = tm;
    long long t = utc_time(&tm);
    utc_tm(t, &tm);
    if (tm.tm_mday != asked.tm_mday || tm.tm_mon != asked.tm_mon)
        return efail(c, source_node(n->kids[0]), "BAD_DATE", "\"%.*s\" is not a real date",
                     (int)(v.n > 40 ? 40 : v.n), v.p);
    if (has_off) {
        t -= (long long)off * 60;
        if (n->flag) {
            time_t tt = (time_t)t;
            localtime_r(&tt, &tm);
        } else {
            utc_tm(t, &tm);
        }
    }
    char buf[128];
    size_t len = strftime(buf, sizeof buf, n->s, &tm);
    *out = mk(c, buf, len);
    return 0;
}

static int eval_word(node *n, ectx *c, tval *out)
{
    tval v;
    if (eval(n->kids[0], c, &v) != 0)
        return -1;
    const char *s = v.p, *e = v.p + v.n;
    while (s < e && is_space(*s))
        s++;
    while (e > s && is_space(e[-1]))
        e--;
    const char *fw_end = s;
    while (fw_end < e && !is_space(*fw_end))
        fw_end++;
    const char *lw = e;
    while (lw > s && !is_space(lw[-1]))
        lw--;
    const char *a = s, *b = e;
    switch (n->i1) {
    case W_FIRST:
        b = fw_end;
        break;
    case W_LAST:
        a = lw;
        break;
    case W_BUT_FIRST:
        a = fw_end;
        while (a < e && is_space(*a))
            a++;
        break;
    default:
        b = lw;
        while (b > s && is_space(b[-1]))
            b--;
        break;
    }
    *out = (tval){a, (size_t)(b - a)};
    return 0;
}

static bool test_when(const when *w, tval v)
{
    switch (w->test) {
    case T_EMPTY:
        return v.n == 0;
    case T_NOT_EMPTY:
        return v.n != 0;
    default:
        for (int i = 0; i < w->nwords; i++)
            if (strlen(w->words[i]) == v.n && strncasecmp(w->words[i], v.p, v.n) == 0)
                return true;
        return false;
    }
}

static int eval_var(ectx *c, int i, tval *out)
{
    tpl_run *r = c->run;
    if (!r->var_done[i]) {
        size_t item = c->item;
        if (eval(r->t->lets[i].expr, c, &r->var_val[i]) != 0)
            return -1;
        c->item = item;
        r->var_done[i] = true;
    }
    *out = r->var_val[i];
    return 0;
}

/* eval_node - what eval does not answer itself (and the leaves too) */
static int eval_node(node *n, ectx *c, tval *out)
{
    switch (n->t) {
    case N_FIELD:
    case N_ITEM: {
        size_t len = 0;
        const char *p =
            record_get(c->rec, n->t == N_FIELD ? REC_HEADER : n->group, c->item, n->slot, &len);
        *out = p ? (tval){p, len} : (tval){"", 0};
        return 0;
    }
    case N_CONST:
        *out = (tval){n->s, n->slen};
        return 0;
    case N_VAR:
        return eval_var(c, n->i1, out);
    case N_REF: {
        tpl_result *res = c->res;
        if (!res->nrows[n->i1]) {
            *out = (tval){"", 0};
            return 0;
        }
        *out = res->rows[n->i1][n->i2];
        return 0;
    }
    case N_LINENO: { /* (no snprintf: once per line of every order) */
        char buf[24], *e = buf + sizeof buf, *p = e;
        size_t v = c->item + 1;
        do
            *--p = (char)('0' + v % 10);
        while (v /= 10);
        *out = mk(c, p, (size_t)(e - p));
        return 0;
    }
    case N_COALESCE:
        for (int i = 0; i < n->nkids; i++) {
            if (eval(n->kids[i], c, out) != 0)
                return -1;
            if (out->n)
                return 0;
        }
        return 0;
    case N_CONCAT: {
        sbuf b = {0};
        size_t seplen = strlen(n->s);
        int parts = 0;
        for (int i = 0; i < n->nkids; i++) {
            tval v;
            if (eval(n->kids[i], c, &v) != 0) {
                sbuf_free(&b);
                return -1;
            }
            if (!v.n)
                continue;
            if (parts++)
                sbuf_add(&b, n->s, seplen);
            sbuf_add(&b, v.p, v.n);
        }
        *out = mk(c, b.p ? b.p : "", b.len);
        sbuf_free(&b);
        return 0;
    }
    case N_WORD:
        return eval_word(n, c, out);
    case N_TRIM: {
        if (eval(n->kids[0], c, out) != 0)
            return -1;
        while (out->n && is_space(out->p[0]))
            out->p++, out->n--;
        while (out->n && is_space(out->p[out->n - 1]))
            out->n--;
        return 0;
    }
    case N_UPPER:
    case N_LOWER: {
        tval v;
        if (eval(n->kids[0], c, &v) != 0)
            return -1;
        *out = mk(c, v.p, v.n);
        char *p = (char *)out->p;
        for (size_t i = 0; i < v.n; i++) /* ASCII only: IDs and codes */
            if (n->t == N_UPPER && p[i] >= 'a' && p[i] <= 'z')
                p[i] = (char)(p[i] - 32);
            else if (n->t == N_LOWER && p[i] >= 'A' && p[i] <= 'Z')
                p[i] = (char)(p[i] + 32);
        return 0;
    }
    case N_DIGITS: {
        tval v;
        if (eval(n->kids[0], c, &v) != 0)
            return -1;
        char *p = arena_alloc(&c->res->mem, v.n + 1);
        size_t k = 0;
        for (size_t i = 0; i < v.n; i++)
            if (v.p[i] >= '0' && v.p[i] <= '9')
                p[k++] = v.p[i];
        p[k] = '\0';
        *out = (tval){p, k};
        return 0;
    }
    case N_PADLEFT: {
        tval v;
        if (eval(n->kids[0], c, &v) != 0)
            return -1;
        size_t chars = utf8_count(v.p, v.n);
        if (v.n == 0 || chars >= (size_t)n->i1) {
            *out = v;
            return 0;
        }
        size_t pad = (size_t)n->i1 - chars, cl = strlen(n->msg);
        char *p = arena_alloc(&c->res->mem, pad * cl + v.n + 1);
        for (size_t i = 0; i < pad; i++)
            memcpy(p + i * cl, n->msg, cl);
        memcpy(p + pad * cl, v.p, v.n);
        p[pad * cl + v.n] = '\0';
        *out = (tval){p, pad * cl + v.n};
        return 0;
    }
    case N_DATE:
        return eval_date(n, c, out);
    case N_ROUND: {
        node *k = n->kids[0];
        decimal d;
        if (k->t == N_ADD || k->t == N_SUB || k->t == N_MUL || k->t == N_NEG || k->t == N_SUM) {
            if (arith_dec(k, c, &d) != 0) /* never empty, never text in between */
                return -1;
        } else {
            tval v;
            if (eval(k, c, &v) != 0)
                return -1;
            if (v.n == 0) {
                *out = v;
                return 0;
            }
            /* a field or variable through its kept decimal, anything else from its text */
            if ((k->t == N_FIELD || k->t == N_ITEM || k->t == N_VAR ? eval_dec(k, c, &d)
                                                                    : parse_dec(k, c, v, &d)) != 0)
                return -1;
        }
        char buf[DEC_TEXT_MAX];
        size_t len = dec_format(d, n->i1, n->flag, buf, sizeof buf);
        *out = mk(c, buf, len);
        return 0;
    }
    case N_ADD:
    case N_SUB:
    case N_MUL:
    case N_NEG:
    case N_SUM: {
        decimal acc;
        if (arith_dec(n, c, &acc) != 0)
            return -1;
        *out = dec_text(c, acc);
        return 0;
    }
    case N_LOOKUP: {
        tval k;
        if (eval(n->kids[0], c, &k) != 0)
            return -1;
        size_t len = 0;
        const char *v = k.n ? lk_get(n->lk, k.p, k.n, &len) : NULL;
        if (v) {
            *out = (tval){v, len};
            return 0;
        }
        if (n->otherwise)
            return eval(n->otherwise, c, out);
        if (k.n == 0 || n->i1 == LK_EMPTY) {
            *out = (tval){"", 0};
            return 0;
        }
        if (n->i1 == LK_KEEP) {
            *out = k;
            return 0;
        }
        return efail(c, source_node(n->kids[0]), n->s ? n->s : "UNKNOWN_CODE",
                     "\"%.*s\" is not in the lookup table%s%s", (int)(k.n > 40 ? 40 : k.n), k.p,
                     n->msg ? ": " : "; add a row for it", n->msg ? n->msg : "");
    }
    case N_CHOOSE:
        for (int i = 0; i < n->nwhens; i++) {
            tval v;
            if (eval(n->whens[i].subject, c, &v) != 0)
                return -1;
            if (test_when(&n->whens[i], v))
                return eval(n->whens[i].then, c, out);
        }
        if (n->otherwise)
            return eval(n->otherwise, c, out);
        *out = (tval){"", 0};
        return 0;
    case N_KEY_OF: {
        if (c->run->spec)
            return spec_abandon(c);
        tval v;
        if (eval(n->kids[0], c, &v) != 0)
            return -1;
        const tpl_hooks *h = c->run->hooks;
        char *k = v.n && h && h->key_of ? h->key_of(h->ctx, n->s, v.p, v.n) : NULL;
        *out = k ? mk(c, k, strlen(k)) : (tval){"", 0};
        free(k);
        return 0;
    }
    case N_SEQUENCE: {
        if (c->run->spec)
            return spec_abandon(c);
        const tpl_hooks *h = c->run->hooks;
        uint64_t v = h && h->next ? h->next(h->ctx, n->s) : ++c->run->counters[n->i2];
        char buf[64];
        int width = n->i1 - (int)strlen(n->s);
        int len = snprintf(buf, sizeof buf, "%s%0*llu", n->s, width > 0 ? width : 1,
                           (unsigned long long)v);
        *out = mk(c, buf, (size_t)len);
        return 0;
    }
    default:
        return efail(c, NULL, "TEMPLATE", "a condition was used where a value is expected");
    }
}

/* add_pending - remember a value to add to a set once the record is accepted */
static void add_pending(tpl_run *r, int set, uint64_t h)
{
    if (r->npending == r->cap_pending) {
        r->cap_pending = r->cap_pending ? r->cap_pending * 2 : 8;
        r->pending = xrealloc(r->pending, (size_t)r->cap_pending * sizeof *r->pending);
        r->pending_set = xrealloc(r->pending_set, (size_t)r->cap_pending * sizeof *r->pending_set);
    }
    r->pending[r->npending] = h;
    r->pending_set[r->npending++] = set;
}

/* eval_cond - true (1), false (0) or failed (-1) */
static int eval_cond(node *n, ectx *c)
{
    switch (n->t) {
    case C_NOT_EMPTY: {
        tval v;
        if (eval(n->kids[0], c, &v) != 0)
            return -1;
        return v.n != 0;
    }
    case C_ZERO: { /* a value that is there and is 0 (an empty one is not known to be 0) */
        tval v;
        decimal d;
        if (eval(n->kids[0], c, &v) != 0)
            return -1;
        if (v.n == 0)
            return 0;
        if (eval_dec(n->kids[0], c, &d) != 0)
            return -1;
        return dec_sign(d) == 0;
    }
    case C_POSITIVE:
    case C_NON_NEGATIVE: {
        tval v;
        decimal d;
        if (eval(n->kids[0], c, &v) != 0)
            return -1;
        if (v.n == 0)
            return 0;
        if (eval_dec(n->kids[0], c, &d) != 0)
            return -1;
        return n->t == C_POSITIVE ? dec_sign(d) > 0 : dec_sign(d) >= 0;
    }
    case C_WITHIN: {
        decimal a, b, tol, diff;
        if (eval_dec(n->kids[0], c, &a) != 0 || eval_dec(n->kids[1], c, &b) != 0)
            return -1;
        dec_parse(n->s, strlen(n->s), &tol);
        if (dec_sub(a, b, &diff) == DEC_OK && dec_cmp(dec_abs(diff), tol) <= 0)
            return 1;
        char as[DEC_TEXT_MAX], bs[DEC_TEXT_MAX];
        dec_format(a, a.scale, false, as, sizeof as);
        dec_format(b, b.scale, false, bs, sizeof bs);
        snprintf(c->within, sizeof c->within, " (computed %s, found %s)", as, bs);
        return 0;
    }
    case C_UNIQUE: {
        tval v;
        if (eval(n->kids[0], c, &v) != 0)
            return -1;
        if (v.n == 0)
            return 1;
        uint64_t h = hash_bytes(v.p, v.n);
        if (c->run->spec) { /* assumed new; tpl_settle asks */
            spec_ask(c, SET_CHECK(n->i2), h, NULL, v);
            add_pending(c->run, SET_CHECK(n->i2), h);
            return 1;
        }
        int was = seen_has(c->run->hsets[n->i2], h, &c->run->seen_err);
        if (was < 0)
            return efail(c, NULL, "TEMPORARY_STORAGE", "%s", sbuf_str(&c->run->seen_err));
        if (was)
            return 0;
        add_pending(c->run, SET_CHECK(n->i2), h); /* kept only if the record is */
        return 1;
    }
    case C_MIN_ITEMS:
        return record_nitems(c->rec, n->group) >= (size_t)n->i1;
    default:
        return efail(c, NULL, "TEMPLATE", "a value was used where a condition is expected");
    }
}

/* run_new - a run; with its duplicate sets unless speculative */
static tpl_run *run_new(template *t, bool spec)
{
    tpl_run *r = xcalloc(1, sizeof *r);
    r->t = t;
    r->spec = spec;
    r->counters = xcalloc((size_t)t->ncounters + 1, sizeof *r->counters);
    r->hsets = xcalloc((size_t)t->nhsets + 1, sizeof *r->hsets);
    r->uniq = xcalloc((size_t)t->nuniq + 1, sizeof *r->uniq);
    /* SAGEBRIDGE_SEEN_MEM: a test hook, so that a small file exercises the on-disk part */
    const char *sm = getenv("SAGEBRIDGE_SEEN_MEM");
    size_t mem = sm && atol(sm) > 0 ? (size_t)atol(sm) : SEEN_MEM_DEFAULT;
    for (int i = 0; i < t->nhsets && !spec; i++)
        r->hsets[i] = seen_new(mem);
    for (int i = 0; i < t->nuniq && !spec; i++)
        r->uniq[i] = seen_new(mem);
    r->var_val = xcalloc((size_t)t->nlets + 1, sizeof *r->var_val);
    r->var_done = xcalloc((size_t)t->nlets + 1, sizeof *r->var_done);
    r->var_dec = xcalloc((size_t)t->nlets + 1, sizeof *r->var_dec);
    r->var_dec_done = xcalloc((size_t)t->nlets + 1, sizeof *r->var_dec_done);
    return r;
}

tpl_run *tpl_run_new(template *t)
{
    return run_new(t, false);
}

tpl_run *tpl_run_new_spec(template *t)
{
    return run_new(t, true);
}

/* set_of - the duplicate set an int names (SET_CHECK / SET_COLUMN) */
static seen *set_of(const tpl_run *r, int set)
{
    return set & 1 ? r->uniq[set / 2] : r->hsets[set / 2];
}

/* commit_pending - an accepted record's values join their sets; 1 (rejected: TEMPORARY_STORAGE)
 * when the on-disk part of a set fails */
static int commit_pending(tpl_run *r, tpl_result *res, const int *set, const uint64_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (seen_add(set_of(r, set[i]), h[i], &r->seen_err) < 0) {
            add_issue(res, 0, "", "TEMPORARY_STORAGE", sbuf_str(&r->seen_err));
            return 1;
        }
    return 0;
}

/*
 * tpl_settle - the ordered half of a speculative evaluation.  The other
 * thread evaluated the record as if every duplicate question had the answer
 * "no" (not seen in this file, not used by an earlier batch) and noted the
 * questions.  Asked now, in file order, against the real sets: when every
 * answer is indeed "no", the ordered evaluation would have taken the same
 * path to the same result, and only the record's values are added.  Any
 * other answer (a duplicate, a failing on-disk set), or a result that met a
 * sequence or a ledger lookup, is thrown away and the record is evaluated
 * again here, in order, as tpl_eval always does.
 */
int tpl_settle(tpl_run *r, const record *rec, tpl_result *res, int spec_rc)
{
    struct tpl_spec *sp = res->spec;
    if (!sp || sp->abandon)
        return tpl_eval(r, rec, res);
    const tpl_hooks *h = r->hooks;
    for (size_t i = 0; i < sp->nq; i++) {
        const spec_q *q = &sp->q[i];
        int was = seen_has(set_of(r, q->set), q->h, &r->seen_err);
        if (was == 0 && q->col && h && h->used && h->used(h->ctx, q->col, q->v.p, q->v.n))
            was = 1;
        if (was != 0)
            return tpl_eval(r, rec, res);
    }
    if (spec_rc != 0)
        return spec_rc;
    return commit_pending(r, res, sp->pset, sp->ph, sp->np);
}

void tpl_prefetch(const tpl_run *r, const tpl_result *res)
{
    const struct tpl_spec *sp = res->spec;
    if (!sp || sp->abandon)
        return;
    for (size_t i = 0; i < sp->nq; i++)
        seen_prefetch(set_of(r, sp->q[i].set), sp->q[i].h);
}

void tpl_run_set_hooks(tpl_run *r, const tpl_hooks *h)
{
    r->hooks = h;
}

void tpl_run_free(tpl_run *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->t->nhsets; i++)
        seen_free(r->hsets[i]); /* NULL in a speculative run */
    for (int i = 0; i < r->t->nuniq; i++)
        seen_free(r->uniq[i]);
    sbuf_free(&r->seen_err);
    free(r->hsets);
    free(r->uniq);
    free(r->counters);
    free(r->var_val);
    free(r->var_done);
    free(r->var_dec);
    free(r->var_dec_done);
    free(r->hdr.v);
    free(r->hdr.gen);
    for (int i = 0; i < r->ngroups; i++) {
        free(r->items[i].v);
        free(r->items[i].gen);
    }
    free(r->items);
    free(r->pending);
    free(r->pending_set);
    free(r);
}

void tpl_result_init(tpl_result *res, const template *t)
{
    memset(res, 0, sizeof *res);
    res->nrows = xcalloc((size_t)t->ntables + 1, sizeof *res->nrows);
    res->rows = xcalloc((size_t)t->ntables + 1, sizeof *res->rows);
    res->totals = xcalloc((size_t)t->ntotals + 1, sizeof *res->totals);
    res->op_json = xcalloc((size_t)t->nopdefs + 1, sizeof *res->op_json);
    res->op_resolve = xcalloc((size_t)t->nopdefs + 1, sizeof *res->op_resolve);
    res->op_item = xcalloc((size_t)t->nopdefs + 1, sizeof *res->op_item);
    res->op_group = xcalloc((size_t)t->nopdefs + 1, sizeof *res->op_group);
    res->op_when = xcalloc((size_t)t->nopdefs + 1, sizeof *res->op_when);
}

void tpl_result_free(tpl_result *res)
{
    if (res->spec) {
        free(res->spec->q);
        free(res->spec->pset);
        free(res->spec->ph);
        free(res->spec);
    }
    arena_free(&res->mem);
    free(res->nrows);
    free(res->rows);
    free(res->totals);
    free(res->op_json);
    free(res->op_resolve);
    free(res->op_item);
    free(res->op_group);
    free(res->op_when);
    free(res->errors);
    free(res->warnings);
    memset(res, 0, sizeof *res);
}

/* reject - record the failure of ectx as the record's error */
static int reject(ectx *c, const char *field_dflt)
{
    add_issue(c->res, 0, c->field[0] ? c->field : field_dflt, c->code, c->msg);
    return 1;
}

/* fit_column_slow - apply max length; 0 ok, 1 too long (error set unless cut) or a
 * character that a Sage import file cannot carry (a control character: the XML form could
 * not be parsed, and no Sage column wants one) */
static int fit_column_slow(ectx *c, const column *col, tval *v, bool quiet)
{
    size_t bad = v->n && !col->plain ? xml_forbidden(v->p, v->n) : v->n;
    if (bad < v->n) {
        if (!quiet) {
            c->code = "BAD_CHARACTER";
            snprintf(c->field, sizeof c->field, "%s", col->name);
            unsigned char ch = (unsigned char)v->p[bad];
            snprintf(c->msg, sizeof c->msg,
                     "%s holds the control character U+%04X at byte %zu, which a Sage import file "
                     "cannot carry: remove it at the source",
                     col->name, ch < 0x20 ? ch : (unsigned)(0xFFFE + (v->p[bad + 2] & 1)), bad + 1);
        }
        return 1;
    }
    if (!col->max || v->n <= (size_t)col->max) /* never more characters than bytes */
        return 0;
    size_t chars = utf8_count(v->p, v->n);
    if (chars <= (size_t)col->max)
        return 0;
    if (col->cut) {
        char msg[200];
        snprintf(msg, sizeof msg, "cut to %d characters (was %zu)", col->max, chars);
        add_issue(c->res, 1, col->name, "TRUNCATED", msg);
        v->n = utf8_prefix(v->p, v->n, (size_t)col->max);
        return 0;
    }
    if (!quiet) {
        c->code = "TOO_LONG";
        snprintf(c->field, sizeof c->field, "%s", col->name);
        snprintf(c->msg, sizeof c->msg,
                 "\"%.*s\" has %zu characters; Sage allows %d in %s: shorten it at the source or "
                 "map it in the template",
                 (int)(v->n > 60 ? 60 : v->n), v->p, chars, col->max, col->name);
    }
    return 1;
}

/* fit_column - fit_column_slow, with the usual case (no forbidden character, no more bytes
 * than the column's characters) decided inline: it is asked for every column of every row */
static inline int fit_column(ectx *c, const column *col, tval *v, bool quiet)
{
    if ((!v->n || col->plain || xml_forbidden(v->p, v->n) == v->n) &&
        (!col->max || v->n <= (size_t)col->max))
        return 0;
    return fit_column_slow(c, col, v, quiet);
}

/* eval_column - one column's value, with its fallback and length rules */
static int eval_column(ectx *c, const column *col, tval *v)
{
    c->field[0] = '\0';
    c->code = NULL;
    if (eval(col->expr, c, v) != 0)
        return -1;
    if (!col->unique) {
        if (fit_column(c, col, v, col->fallback != NULL) == 0)
            return 0;
        if (!col->fallback)
            return -1;
    } else {
        int fits = v->n && fit_column(c, col, v, col->fallback != NULL) == 0, taken = 0;
        if (fits && c->run->spec) { /* assumed free; tpl_settle asks */
            spec_ask(c, SET_COLUMN(col->uniq_id), hash_bytes(v->p, v->n), col->name, *v);
        } else if (fits) {
            const tpl_hooks *h = c->run->hooks;
            taken = seen_has(c->run->uniq[col->uniq_id], hash_bytes(v->p, v->n), &c->run->seen_err);
            if (taken < 0)
                return efail(c, NULL, "TEMPORARY_STORAGE", "%s", sbuf_str(&c->run->seen_err));
            if (!taken && h && h->used && h->used(h->ctx, col->name, v->p, v->n))
                taken = 1;
        }
        if (fits && !taken)
            goto unique_ok;
        if (!col->fallback) {
            if (!v->n)
                return efail(c, NULL, "MISSING_FIELD", "%s is empty", col->name);
            if (c->code)
                return -1; /* set by fit_column */
            return efail(c, NULL, "DUPLICATE_KEY", "%s %.*s is already used by an earlier record",
                         col->name, (int)v->n, v->p);
        }
    }
    if (eval(col->fallback, c, v) != 0)
        return -1;
    if (fit_column(c, col, v, false) != 0)
        return -1;
    if (!col->unique)
        return 0;
unique_ok:
    add_pending(c->run, SET_COLUMN(col->uniq_id), hash_bytes(v->p, v->n));
    return 0;
}

/* gen_members - members of one JSON object; resolve collects "{ID:KEY}" placeholders */
static int gen_members(ectx *c, yajl_gen g, jnode **kids, int n, sbuf *resolve)
{
    for (int i = 0; i < n; i++) {
        jnode *j = kids[i];
        if (j->kind == J_OBJECT) {
            yajl_gen_string(g, (const unsigned char *)j->name, strlen(j->name));
            yajl_gen_map_open(g);
            if (gen_members(c, g, j->kids, j->nkids, resolve) != 0)
                return -1;
            yajl_gen_map_close(g);
            continue;
        }
        if (j->kind == J_LIST) {
            /* an array of one object, written only when its first member has a value */
            tval first;
            c->field[0] = '\0';
            if (eval(j->kids[0]->expr, c, &first) != 0)
                return -1;
            if (!first.n)
                continue;
            yajl_gen_string(g, (const unsigned char *)j->name, strlen(j->name));
            yajl_gen_array_open(g);
            yajl_gen_map_open(g);
            if (gen_members(c, g, j->kids, j->nkids, resolve) != 0)
                return -1;
            yajl_gen_map_close(g);
            yajl_gen_array_close(g);
            continue;
        }
        tval v;
        c->field[0] = '\0';
        if (eval(j->expr, c, &v) != 0)
            return -1;
        if (!v.n)
            continue; /* an empty cell sets nothing: Sage exports leave columns blank */
        yajl_gen_string(g, (const unsigned char *)j->name, strlen(j->name));
        if (j->type == JT_NUMBER) {
            decimal d;
            if (dec_parse(v.p, v.n, &d) != DEC_OK)
                return efail(c, source_node(j->expr), "BAD_NUMBER",
                             "\"%.*s\" is not a number (member %s)", (int)(v.n > 40 ? 40 : v.n),
                             v.p, j->name);
            char buf[DEC_TEXT_MAX];
            size_t len = dec_format(d, d.scale, false, buf, sizeof buf);
            yajl_gen_number(g, buf, len); /* the decimal text itself: never a double */
        } else if (j->type == JT_BOOL) {
            bool t = (v.n == 4 && !strncasecmp(v.p, "true", 4)) ||
                     (v.n == 3 && !strncasecmp(v.p, "yes", 3)) || (v.n == 1 && v.p[0] == '1');
            yajl_gen_bool(g, t);
        } else if (j->type == JT_ID) {
            sbuf ph = {0};
            sbuf_printf(&ph, "{ID:%.*s}", (int)v.n, v.p);
            yajl_gen_string(g, (const unsigned char *)ph.p, ph.len);
            /* "ID:KEY": {"from": "/Route/Exists/Key/KEY"} */
            yajl_gen rg = yajl_gen_alloc(NULL);
            yajl_gen_map_open(rg);
            yajl_gen_string(rg, (const unsigned char *)ph.p + 1, ph.len - 2);
            yajl_gen_map_open(rg);
            yajl_gen_string(rg, (const unsigned char *)"from", 4);
            sbuf from = {0};
            sbuf_printf(&from, "%s%.*s", j->from, (int)v.n, v.p);
            yajl_gen_string(rg, (const unsigned char *)from.p, from.len);
            yajl_gen_map_close(rg);
            yajl_gen_map_close(rg);
            const unsigned char *rb;
            size_t rl;
            yajl_gen_get_buf(rg, &rb, &rl);
            if (resolve->len)
                sbuf_addc(resolve, ',');
            sbuf_add(resolve, rb + 1, rl - 2); /* the member without the braces */
            yajl_gen_free(rg);
            sbuf_free(&from);
            sbuf_free(&ph);
        } else {
            yajl_gen_string(g, (const unsigned char *)v.p, v.n);
        }
    }
    return 0;
}

/* eval_operation - the record's body (or collected item) and its placeholders */
static int eval_operation(ectx *c, opdef *o, tval *json, tval *resolve)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    sbuf rs = {0};
    yajl_gen_map_open(g);
    int rc = gen_members(c, g, o->members, o->n, &rs);
    yajl_gen_map_close(g);
    if (rc == 0) {
        const unsigned char *b;
        size_t l;
        yajl_gen_get_buf(g, &b, &l);
        *json = mk(c, (const char *)b, l);
        *resolve = mk(c, rs.p ? rs.p : "", rs.len);
    }
    yajl_gen_free(g);
    sbuf_free(&rs);
    return rc;
}

/* tpl_eval - checks, then every table's rows */
int tpl_eval(tpl_run *r, const record *rec, tpl_result *res)
{
    template *t = r->t;
    arena_reset(&res->mem);
    res->nerrors = res->nwarnings = 0;
    memset(res->nrows, 0, (size_t)t->ntables * sizeof *res->nrows);
    memset(r->var_done, 0, (size_t)t->nlets * sizeof *r->var_done);
    memset(r->var_dec_done, 0, (size_t)t->nlets * sizeof *r->var_dec_done);
    r->gen++; /* every field's cached decimal is stale */
    r->npending = 0;
    if (r->spec) {
        if (!res->spec)
            res->spec = xcalloc(1, sizeof *res->spec);
        res->spec->abandon = false;
        res->spec->nq = res->spec->np = 0;
    }
    ectx c = {.run = r, .rec = rec, .res = res};

    res->key = (tval){"", 0};
    if (t->key_slot >= 0) {
        size_t len = 0;
        const char *k = record_get(rec, REC_HEADER, 0, t->key_slot, &len);
        if (k)
            res->key = (tval){k, len};
    }
    if (rec->not_object) {
        add_issue(res, 0, "", "NOT_OBJECT", "the record is not a JSON object");
        return 1;
    }
    for (int i = 0; i < t->nchecks; i++) {
        check *ck = &t->checks[i];
        size_t ni = ck->group >= 0 ? record_nitems(rec, ck->group) : 1;
        for (size_t it = 0; it < ni; it++) {
            c.item = it;
            c.field[0] = '\0';
            int ok = eval_cond(ck->cond, &c);
            if (ok < 0)
                return reject(&c, ck->field ? ck->field : "");
            if (!ok) {
                char field[200];
                if (ck->group >= 0)
                    snprintf(field, sizeof field, "%s[%zu].%s",
                             schema_group_path(rec->schema, ck->group), it,
                             ck->field ? ck->field : "");
                else
                    snprintf(field, sizeof field, "%s", ck->field ? ck->field : "");
                char msg[600];
                snprintf(msg, sizeof msg, "%s%s", ck->message ? ck->message : ck->code,
                         ck->cond->t == C_WITHIN ? c.within : "");
                add_issue(res, 0, field, ck->code, msg);
                return 1;
            }
        }
    }
    for (int ti = 0; ti < t->ntables; ti++) {
        table *tb = &t->tables[ti];
        size_t nrows = tb->group >= 0 ? record_nitems(rec, tb->group) : 1;
        tval *rows = arena_alloc(&res->mem, (nrows * (size_t)tb->ncols + 1) * sizeof *rows);
        res->rows[ti] = rows;
        for (size_t ri = 0; ri < nrows; ri++) {
            c.item = ri;
            for (int ci = 0; ci < tb->ncols; ci++) {
                tval *v = &rows[ri * (size_t)tb->ncols + (size_t)ci];
                if (eval_column(&c, &tb->cols[ci], v) != 0)
                    return reject(&c, tb->cols[ci].name);
            }
        }
        res->nrows[ti] = nrows;
    }
    res->key_ref = t->key_ci >= 0 && res->nrows[0] ? res->rows[0][t->key_ci] : (tval){"", 0};
    for (int i = 0; i < t->nopdefs; i++) {
        opdef *o = &t->opdefs[i];
        if (eval_operation(&c, o, &res->op_json[i], &res->op_resolve[i]) != 0)
            return reject(&c, o->op);
        res->op_item[i] = (tval){"", 0};
        res->op_group[i] = (tval){"", 0};
        res->op_when[i] = true;
        if (!o->d.grouped)
            continue;
        size_t gl = 0;
        const char *g = record_get(rec, REC_HEADER, 0, o->group_slot, &gl);
        res->op_group[i] = g ? (tval){g, gl} : (tval){"", 0};
        if (o->nitems) {
            yajl_gen gi = yajl_gen_alloc(NULL);
            sbuf rs = {0};
            yajl_gen_map_open(gi);
            int gr = gen_members(&c, gi, o->items, o->nitems, &rs);
            yajl_gen_map_close(gi);
            if (gr == 0) {
                const unsigned char *b;
                size_t l;
                yajl_gen_get_buf(gi, &b, &l);
                res->op_item[i] = mk(&c, (const char *)b, l);
                if (rs.len) { /* the line's placeholders join the operation's */
                    sbuf all = {0};
                    sbuf_add(&all, res->op_resolve[i].p, res->op_resolve[i].n);
                    if (all.len)
                        sbuf_addc(&all, ',');
                    sbuf_add(&all, rs.p, rs.len);
                    res->op_resolve[i] = mk(&c, all.p, all.len);
                    sbuf_free(&all);
                }
            }
            yajl_gen_free(gi);
            sbuf_free(&rs);
            if (gr != 0)
                return reject(&c, o->op);
        }
        if (o->when) {
            int w = eval_cond(o->when, &c);
            if (w < 0)
                return reject(&c, o->op);
            res->op_when[i] = w == 1;
        }
    }
    c.item = 0;
    res->currency = (tval){"", 0};
    if (t->currency) {
        c.field[0] = '\0';
        if (eval(t->currency, &c, &res->currency) != 0)
            return reject(&c, "currency");
    }
    for (int i = 0; i < t->ntotals; i++) {
        c.field[0] = '\0';
        if (eval_dec(t->totals[i], &c, &res->totals[i]) != 0)
            return reject(&c, t->total_names[i]);
    }
    if (r->spec) { /* tpl_settle adds them, in order */
        struct tpl_spec *sp = res->spec;
        if (sp->capp < (size_t)r->npending) {
            sp->capp = (size_t)r->npending;
            sp->pset = xrealloc(sp->pset, sp->capp * sizeof *sp->pset);
            sp->ph = xrealloc(sp->ph, sp->capp * sizeof *sp->ph);
        }
        sp->np = (size_t)r->npending;
        memcpy(sp->pset, r->pending_set, sp->np * sizeof *sp->pset);
        memcpy(sp->ph, r->pending, sp->np * sizeof *sp->ph);
        return 0;
    }
    return commit_pending(r, res, r->pending_set, r->pending, (size_t)r->npending);
}
