/* prepare.h: text/code files or directory trees -> token shards, byte-level (vocab 256) or
 * by a tokenizer, split into train and validation by file (a hash of the path, so the
 * split is stable as files are added). Files that look binary (a NUL byte in their first
 * 8 KiB) and hidden entries (names starting with '.') are skipped; directories are walked
 * in sorted order. mtp_prepare is declared in mtp.h; the tokenizer is used through mtp.h
 * alone, so this layer needs none of src/text. */
#ifndef MTP_PREPARE_H
#define MTP_PREPARE_H

#include <stddef.h>

#include "core/util.h"

#endif
