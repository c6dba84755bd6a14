/* version.h - the one place the version is written */
#ifndef SAGEBRIDGE_VERSION_H
#define SAGEBRIDGE_VERSION_H
#define SAGEBRIDGE_VERSION "0.1.0"
#endif
