/*
 * validate.h - the `validate` command: a template against the template
 * language, an XML output against its Sage schema, or a Clarity export
 * against the templates (a dry run that writes nothing).
 */
#ifndef SAGEBRIDGE_VALIDATE_H
#define SAGEBRIDGE_VALIDATE_H

#include "config.h"
#include "template.h"

/* validate_file - 0 valid, 65 invalid data, 78 invalid template, 66 missing */
int validate_file(const config *cfg, tpl_set *templates, const char *xsd_dir, const char *path);

#endif
