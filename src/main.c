/*
 * main.c - the command line: parse it, load what the command needs, call
 * one module.  Exit statuses follow sysexits.h (SPEC §2).
 */
#include <getopt.h>
#include <libxml/parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "convert.h"
#include "paths.h"
#include "sage_out.h"
#include "audit.h"
#include "deliver.h"
#include "spool.h"
#include "template.h"
#include "validate.h"
#include "version.h"

#define EX_OK        0
#define EX_USAGE     64
#define EX_CONFIG    78
#define EX_CANTCREAT 73

static const char usage_text[] =
    "usage: sagebridge [-c FILE] COMMAND [ARGS]\n"
    "\n"
    "Converts Clarity eCommerce JSON exports into Sage 500 ERP import files.\n"
    "\n"
    "Commands:\n"
    "  init [DIR]\n"
    "        create a spool (default ./spool) and, unless one exists, a commented\n"
    "        sagebridge.conf in it (or at -c FILE) pointing at it\n"
    "  run [--once]\n"
    "        process the spool: take complete files from in/clarity/, publish Sage\n"
    "        import files to out/sage/ (exactly once, .done last), archive each\n"
    "        batch, send bad input to error/; --once: what waits now (files still\n"
    "        settling are waited for, up to settle_ms), then exit;\n"
    "        without it, watch until SIGTERM/SIGINT (SIGHUP reloads the config)\n"
    "  deliver [--once]\n"
    "        send the Clarity API batches waiting in out/clarity/ to the API of\n"
    "        [clarity] url (auth identity, basic or oauth2); each operation once,\n"
    "        resumed after a restart; delivered batches go to sent/clarity/, ones\n"
    "        with failed operations to error/; exit 75 while the API is down\n"
    "  status [--json]\n"
    "        files waiting per folder and their age, last batches, ledger size\n"
    "  hold NAME | release NAME | requeue NAME\n"
    "        move a waiting file to hold/, back from hold/, or a rejected file\n"
    "        from error/ back to its inbound folder (after fixing the cause)\n"
    "  archive list [--since DATE] [--until DATE] [--kind KIND] [--json]\n"
    "        one line per batch: counts and control totals per currency (ledger)\n"
    "  archive show BATCH [--json]\n"
    "        the batch's report, or its manifest.json\n"
    "  archive extract BATCH DIR\n"
    "        the input and outputs back, byte for byte\n"
    "  archive verify [BATCH] [--since DATE]\n"
    "        re-hash every archived file, walk the manifest chain, check that the\n"
    "        ledger and archive/ agree; names the first difference (exit 65)\n"
    "  archive prune --before DATE\n"
    "        remove older archives after recording what goes in the chain\n"
    "  archive report --date D [--format txt|csv|html]\n"
    "        control totals per currency of what was sent to Sage that day\n"
    "  replay BATCH [--dry-run] [--force-republish]\n"
    "        run an archived input again through today's templates as a new batch\n"
    "        that names the one it replays; --dry-run shows the differences from\n"
    "        the original outputs and publishes nothing; orders published before\n"
    "        stay unpublished unless --force-republish (recorded in the manifest)\n"
    "  convert FILE... [-o DIR] [--format csv|xml|both] [--template NAME]\n"
    "        convert Clarity exports (JSON array, NDJSON or {\"orders\":[...]}) into\n"
    "        Sage 500 staging files in DIR (default: the current folder):\n"
    "        SO_B_StgSalesOrder.csv, SO_B_StgSOLine.csv, SO_B.xml and SO_B.done,\n"
    "        B being the input's name without extension; rejected records are\n"
    "        listed in B.rejects.json.  Default format: both.\n"
    "  validate FILE...\n"
    "        check a template (templates/*.xml), a Sage XML output against its\n"
    "        schema (xsd/), or a Clarity export against the templates (writes\n"
    "        nothing).\n"
    "\n"
    "Options:\n"
    "  -c FILE     configuration file (default ./sagebridge.conf if present)\n"
    "  --help      this text\n"
    "  --version   the version\n"
    "\n"
    "Exit status: 0 all good; 64 usage; 65 input rejected (in part or whole);\n"
    "75 temporary failure (the Clarity API is unreachable: try again later);\n"
    "66 input missing (or no spool); 73 cannot create output; 74 I/O error;\n"
    "78 configuration or template error.\n"
    "\n"
    "Settings come from sagebridge.conf (see the one `init` writes: [spool] dir,\n"
    "settle_ms, …; [sage] timezone, default_cust_id, default_warehouse; [paths]\n"
    "templates, xsd) or SAGEBRIDGE_SECTION_KEY environment variables.  Mappings\n"
    "live in templates/, see templates/README.md.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "sagebridge: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see sagebridge --help)\n");
    return EX_USAGE;
}

/* load_templates - every template of the templates folder */
static tpl_set *load_templates(const config *cfg, char **xsd_out)
{
    char *tdir = paths_dir(cfg, "templates");
    char *xdir = paths_dir(cfg, "xsd");
    tpl_set *s = tpl_set_new(cfg, xdir);
    sbuf err = {0};
    if (tpl_load_dir(s, tdir, &err) != 0) {
        fprintf(stderr, "sagebridge: %s\n", sbuf_str(&err));
        tpl_set_free(s);
        s = NULL;
    }
    sbuf_free(&err);
    free(tdir);
    if (xsd_out)
        *xsd_out = xdir;
    else
        free(xdir);
    return s;
}

static int cmd_convert(const config *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},
        {"template", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    convert_opts o = {.outdir = ".", .formats = SW_CSV | SW_XML};
    int c;
    optind = 1;
    opterr = 0;
    /* GNU getopt permutes: options may stand before or after the files */
    while ((c = getopt_long(argc, argv, "o:f:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o.outdir = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "csv") == 0)
                o.formats = SW_CSV;
            else if (strcmp(optarg, "xml") == 0)
                o.formats = SW_XML;
            else if (strcmp(optarg, "both") == 0)
                o.formats = SW_CSV | SW_XML;
            else
                return usage_error("--format takes csv, xml or both, not \"%s\"", optarg);
            break;
        case 't':
            o.template_name = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EX_OK;
        default:
            return usage_error("convert: unknown option or missing argument: %s", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error("convert needs at least one FILE%s", "");
    char **files = argv + optind;
    int nfiles = argc - optind;
    struct stat st;
    if (stat(o.outdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "sagebridge: %s: the output folder does not exist; create it first\n",
                o.outdir);
        return EX_CANTCREAT;
    }
    o.templates = load_templates(cfg, NULL);
    if (!o.templates)
        return EX_CONFIG;
    int worst = 0;
    for (int i = 0; i < nfiles; i++) {
        int rc = convert_file(&o, files[i], NULL);
        if (rc > worst)
            worst = rc;
    }
    tpl_set_free(o.templates);
    return worst;
}

static int cmd_validate(const config *cfg, int argc, char **argv)
{
    if (argc < 2)
        return usage_error("validate needs at least one FILE%s", "");
    char *xsd = NULL;
    tpl_set *s = NULL;
    int worst = 0;
    for (int i = 1; i < argc; i++) {
        size_t l = strlen(argv[i]);
        int is_xml = l > 4 && strcmp(argv[i] + l - 4, ".xml") == 0;
        if (!is_xml && !s) {
            s = load_templates(cfg, NULL);
            if (!s) {
                worst = EX_CONFIG;
                continue;
            }
        }
        if (!xsd)
            xsd = paths_dir(cfg, "xsd");
        int rc = validate_file(cfg, s, xsd, argv[i]);
        if (rc > worst)
            worst = rc;
    }
    tpl_set_free(s);
    free(xsd);
    return worst;
}

static const char *const later[] = {"ledger", "map"};

/* open_spool - the spool named by the configuration */
static spool *open_spool(const char *cfgpath, config *cfg, int *rc)
{
    sbuf err = {0};
    spool *s = spool_open(cfgpath ? cfgpath : cfg_path(cfg), cfg, &err, rc);
    if (!s)
        fprintf(stderr, "sagebridge: %s\n", sbuf_str(&err));
    sbuf_free(&err);
    return s;
}

/* cmd_spool - run, status, hold, release, requeue */
static int cmd_spool(const char *cfgpath, config *cfg, int argc, char **argv)
{
    const char *cmd = argv[0];
    int rc = EX_OK;
    if (strcmp(cmd, "run") == 0) {
        bool once = false;
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--once") == 0)
                once = true;
            else {
                cfg_free(cfg);
                return usage_error("run: unknown argument %s", argv[i]);
            }
        }
        spool *s = open_spool(cfgpath, cfg, &rc);
        if (!s)
            return rc;
        rc = spool_run(s, once);
        spool_close(s);
        return rc;
    }
    if (strcmp(cmd, "replay") == 0) {
        bool dry = false, force = false;
        const char *batch = NULL;
        for (int i = 1; i < argc; i++) {
            if (!strcmp(argv[i], "--dry-run"))
                dry = true;
            else if (!strcmp(argv[i], "--force-republish"))
                force = true;
            else if (!batch && argv[i][0] != '-')
                batch = argv[i];
            else {
                cfg_free(cfg);
                return usage_error("replay takes BATCH [--dry-run] [--force-republish], not %s",
                                   argv[i]);
            }
        }
        if (!batch) {
            cfg_free(cfg);
            return usage_error("replay needs a BATCH%s", "");
        }
        spool *s = open_spool(cfgpath, cfg, &rc);
        if (!s)
            return rc;
        rc = spool_replay(s, batch, dry, force);
        spool_close(s);
        return rc;
    }
    if (strcmp(cmd, "deliver") == 0) {
        bool once = argc == 2 && strcmp(argv[1], "--once") == 0;
        if (argc > 2 || (argc == 2 && !once)) {
            cfg_free(cfg);
            return usage_error("deliver takes only --once%s", "");
        }
        spool *s = open_spool(cfgpath, cfg, &rc);
        if (!s)
            return rc;
        rc = deliver_run(s, once);
        spool_close(s);
        return rc;
    }
    if (strcmp(cmd, "archive") == 0) {
        spool *s = open_spool(cfgpath, cfg, &rc);
        if (!s)
            return rc;
        rc = audit_main(s, argc - 1, argv + 1);
        spool_close(s);
        return rc;
    }
    if (strcmp(cmd, "status") == 0) {
        bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
        if (argc > 2 || (argc == 2 && !json)) {
            cfg_free(cfg);
            return usage_error("status takes only --json%s", "");
        }
        spool *s = open_spool(cfgpath, cfg, &rc);
        if (!s)
            return rc;
        rc = spool_status(s, json);
        spool_close(s);
        return rc;
    }
    if (argc != 2) {
        cfg_free(cfg);
        return usage_error("%s needs exactly one NAME", cmd);
    }
    spool *s = open_spool(cfgpath, cfg, &rc);
    if (!s)
        return rc;
    rc = spool_move(s, cmd, argv[1]);
    spool_close(s);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cfgpath = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return EX_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("sagebridge %s\n", SAGEBRIDGE_VERSION);
            return EX_OK;
        }
        if (strcmp(argv[i], "-c") == 0) {
            if (++i >= argc)
                return usage_error("-c needs a FILE%s", "");
            cfgpath = argv[i];
            continue;
        }
        if (strncmp(argv[i], "--config=", 9) == 0) {
            cfgpath = argv[i] + 9;
            continue;
        }
        if (argv[i][0] == '-')
            return usage_error("unknown option %s", argv[i]);
        break;
    }
    if (i >= argc)
        return usage_error("no command given%s", "");
    const char *cmd = argv[i];
    if (strcmp(cmd, "init") == 0) {
        if (argc - i > 2)
            return usage_error("init takes one DIR at most%s", "");
        sbuf err = {0};
        int rc = spool_init(argc - i == 2 ? argv[i + 1] : "spool", cfgpath, &err);
        if (rc)
            fprintf(stderr, "sagebridge: %s\n", sbuf_str(&err));
        sbuf_free(&err);
        return rc;
    }
    int is_spool = !strcmp(cmd, "run") || !strcmp(cmd, "status") || !strcmp(cmd, "archive") ||
                   !strcmp(cmd, "replay") || !strcmp(cmd, "deliver") || !strcmp(cmd, "hold") ||
                   !strcmp(cmd, "release") || !strcmp(cmd, "requeue");
    int known = is_spool || strcmp(cmd, "convert") == 0 || strcmp(cmd, "validate") == 0;
    if (!known) {
        for (size_t k = 0; k < sizeof later / sizeof *later; k++)
            if (strcmp(cmd, later[k]) == 0)
                return usage_error("\"%s\" is not available in this version yet", cmd);
        return usage_error("unknown command \"%s\"", cmd);
    }
    sbuf err = {0};
    config *cfg = cfg_load(cfgpath, &err);
    if (!cfg) {
        fprintf(stderr, "sagebridge: %s\n", sbuf_str(&err));
        sbuf_free(&err);
        return EX_CONFIG;
    }
    sbuf_free(&err);
    LIBXML_TEST_VERSION
    if (is_spool) {
        int rc = cmd_spool(cfgpath, cfg, argc - i, argv + i); /* the spool owns cfg */
        xmlCleanupParser();
        return rc;
    }
    int rc = strcmp(cmd, "convert") == 0 ? cmd_convert(cfg, argc - i, argv + i)
                                         : cmd_validate(cfg, argc - i, argv + i);
    cfg_free(cfg);
    xmlCleanupParser();
    return rc;
}
