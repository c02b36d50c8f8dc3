/*
 * echo: the cheapest possible plugin under our ABI, for the call benchmarks.
 *
 * gk_call returns the args exactly where the host put them: the result
 * points inside the input block, which the ABI allows precisely so that an
 * echo costs no allocation and no copy (the host must then not free the
 * result separately). Build with ./build.sh.
 */
#include "goatkit.h"

uint64_t gk_register(void) {
    return gk_return_static(
        "{\"name\":\"echo\",\"version\":\"1.0.0\","
        "\"description\":\"Returns its arguments unchanged (benchmark plugin)\","
        "\"functions\":[{\"name\":\"echo\",\"args\":[],\"returns\":\"any\","
        "\"description\":\"Returns the args JSON as it came in\"}]}");
}

uint64_t gk_call(const char *fn, size_t fn_len, const char *args, size_t args_len) {
    if (fn_len == 4 && memcmp(fn, "echo", 4) == 0) return gk_pack(args, args_len);
    return gk_return_error("unknown_function", "echo has only the function echo");
}
