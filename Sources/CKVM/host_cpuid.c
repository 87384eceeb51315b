/*
 * host_cpuid.c: the host's CPUID, for comparing with a vCPU's table (see ckvm_host_cpuid.h). No logic.
 */
#include "ckvm_host_cpuid.h"

#include <cpuid.h>

void ckvm_host_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) {
    unsigned int a, b, c, d;
    __cpuid_count(leaf, subleaf, a, b, c, d);
    out[0] = a; out[1] = b; out[2] = c; out[3] = d;
}
