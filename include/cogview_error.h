/*
 * cogview_error.h: cogview's error codes, one table shared by the C API (cogview.h) and the plugin
 * ABI (cogview_plugin.h); both headers include this one. The Rust side is cogview_core::ErrorCode
 * (crates/cogview-core/src/error.rs); a test checks that the two agree, code for code.
 *
 * The values 1-11 are those of plugin ABI 1.0 and never change; a plugin returns only those. The
 * C API reports any code of the table except COGVIEW_ERR_UNSUPPORTED and COGVIEW_ERR_ABI (plugin
 * failures reach it as COGVIEW_ERR_PLUGIN). New codes are only appended, so a program should
 * treat a code it does not know as a failure it cannot act on. (C API version 2 moved the C API's
 * codes onto this table; version 1 numbered them 1-9 in another order.)
 *
 * For plugins, `subject` is the field for INVALID_INPUT, the path for IO and INVALID_WEIGHTS, and
 * the key in the stage's options table for CONFIG.
 */
#ifndef COGVIEW_ERROR_H
#define COGVIEW_ERROR_H

#define COGVIEW_ERR_INVALID_INPUT 1      /* the prompt, a grid, an image or a field is not acceptable */
#define COGVIEW_ERR_TOKEN_OUT_OF_VOCAB 2 /* a token id is outside the model's vocabulary           */
#define COGVIEW_ERR_IO 3                 /* a file could not be read or written                     */
#define COGVIEW_ERR_INVALID_WEIGHTS 4    /* corrupt, truncated or mismatched weights                */
#define COGVIEW_ERR_CONFIG 5             /* the pipeline file, a setting or a plugin option is bad  */
#define COGVIEW_ERR_BACKEND 6            /* the tensor library failed                               */
#define COGVIEW_ERR_CANCELLED 7          /* cogview_session_cancel, a progress callback, the hooks  */
#define COGVIEW_ERR_UNSUPPORTED 8        /* plugins: cannot do that (this device, this model kind)  */
#define COGVIEW_ERR_PANIC 9              /* a bug (a Rust panic or C++ exception was caught)        */
#define COGVIEW_ERR_ABI 10               /* plugins: the plugin ABI was broken                      */
#define COGVIEW_ERR_TEXT_TOO_LONG 11     /* the prompt is longer than the model accepts             */
#define COGVIEW_ERR_INVALID_ARGUMENT 12  /* C API: NULL pointer, invalid UTF-8, zero count, bad
                                            struct_size                                             */
#define COGVIEW_ERR_PLUGIN 13            /* C API: a backend plugin could not be loaded or used     */

#endif /* COGVIEW_ERROR_H */
