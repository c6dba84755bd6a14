/*
 * validate.c - check one file and say exactly what is wrong with it.
 *
 * XML files are told apart by their root element's namespace: the template
 * language's namespace means a template; any other is looked up among the
 * targetNamespace attributes of the xsd folder's schemas, so a new Sage layout needs a new
 * schema file and nothing in C.  Other files are taken as Clarity exports
 * and converted without writing anything.
 *
 * DIAGNOSTICS
 *	One line per problem on stderr, "FILE:LINE: message"; "FILE: valid"
 *	on stdout when there is none.
 */
#include "validate.h"

#include <dirent.h>
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/xmlschemas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"

#define TEMPLATE_NS "urn:sagebridge:template:1"

typedef struct {
    const char *file;
    int count;
} verr;

static void on_error(void *ctx, const xmlError *e)
{
    verr *v = ctx;
    if (!e)
        return;
    if (++v->count > 50)
        return;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", e->message ? e->message : "invalid");
    msg[strcspn(msg, "\n")] = '\0';
    fprintf(stderr, "sagebridge: %s:%d: %s\n", v->file, e->line, msg);
}

static void on_error_cb(void *ctx, xmlErrorPtr e)
{
    on_error(ctx, e);
}

/* schema_for - the xsd file whose targetNamespace is ns */
static char *schema_for(const char *xsd_dir, const char *ns)
{
    DIR *d = opendir(xsd_dir);
    if (!d)
        return NULL;
    struct dirent *e;
    char *found = NULL;
    while (!found && (e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".xsd") != 0)
            continue;
        sbuf p = {0};
        sbuf_printf(&p, "%s/%s", xsd_dir, e->d_name);
        xmlDocPtr doc =
            xmlReadFile(p.p, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (doc) {
            xmlChar *tns =
                xmlGetProp(xmlDocGetRootElement(doc), (const xmlChar *)"targetNamespace");
            if (tns && strcmp((const char *)tns, ns) == 0)
                found = xstrdup(p.p);
            xmlFree(tns);
            xmlFreeDoc(doc);
        }
        sbuf_free(&p);
    }
    closedir(d);
    return found;
}

/* names_template_ns - a file too broken to parse: was it meant as a template? */
static int names_template_ns(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char buf[4097];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, TEMPLATE_NS) != NULL;
}

static int validate_xml(const config *cfg, const char *xsd_dir, const char *path)
{
    verr v = {path, 0};
    xmlSetStructuredErrorFunc(&v, on_error_cb);
    xmlDocPtr doc = xmlReadFile(path, NULL, XML_PARSE_NONET);
    xmlSetStructuredErrorFunc(NULL, NULL);
    if (!doc)
        return names_template_ns(path) ? 78 : 65;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    const char *ns = root && root->ns ? (const char *)root->ns->href : "";
    if (strcmp(ns, TEMPLATE_NS) == 0) {
        xmlFreeDoc(doc);
        sbuf err = {0};
        int rc = tpl_validate_file(cfg, xsd_dir, path, &err);
        if (rc != 0)
            fprintf(stderr, "sagebridge: %s\n", sbuf_str(&err));
        else
            printf("%s: valid template\n", path);
        sbuf_free(&err);
        return rc ? 78 : 0;
    }
    char *xsd = schema_for(xsd_dir, ns);
    if (!xsd) {
        fprintf(stderr,
                "sagebridge: %s: no schema in %s for namespace \"%s\"; is this a file "
                "sagebridge wrote?\n",
                path, xsd_dir, ns);
        xmlFreeDoc(doc);
        return 65;
    }
    xmlSchemaParserCtxtPtr spc = xmlSchemaNewParserCtxt(xsd);
    xmlSchemaPtr schema = xmlSchemaParse(spc);
    xmlSchemaFreeParserCtxt(spc);
    if (!schema) {
        fprintf(stderr, "sagebridge: %s: the schema cannot be loaded\n", xsd);
        free(xsd);
        xmlFreeDoc(doc);
        return 78;
    }
    xmlSchemaValidCtxtPtr vc = xmlSchemaNewValidCtxt(schema);
    xmlSchemaSetValidStructuredErrors(vc, on_error_cb, &v);
    int rc = xmlSchemaValidateDoc(vc, doc);
    xmlSchemaFreeValidCtxt(vc);
    xmlSchemaFree(schema);
    xmlFreeDoc(doc);
    if (rc == 0)
        printf("%s: valid against %s\n", path, xsd);
    else if (v.count > 50)
        fprintf(stderr, "sagebridge: %s: … %d problems in all\n", path, v.count);
    free(xsd);
    return rc == 0 ? 0 : 65;
}

int validate_file(const config *cfg, tpl_set *templates, const char *xsd_dir, const char *path)
{
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "sagebridge: %s: cannot read: %s\n", path, strerror(errno));
        return 66;
    }
    size_t l = strlen(path);
    if (l > 4 && (strcmp(path + l - 4, ".xml") == 0 || strcmp(path + l - 4, ".xsd") == 0))
        return validate_xml(cfg, xsd_dir, path);
    if (!templates)
        return 78;
    convert_opts o = {.templates = templates, .outdir = NULL, .formats = 0};
    convert_stats st;
    int rc = convert_file(&o, path, &st);
    if (rc == 0)
        printf("%s: valid, %llu records, template %s\n", path, (unsigned long long)st.records,
               st.template_name ? st.template_name : "-");
    return rc;
}
