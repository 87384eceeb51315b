/*
 * ckvm_host_cpuid.h: the CPUID instruction run by the VMM process itself, on the host CPU. `swiftlet
 * explain` sets it beside the table a vCPU is given with KVM_SET_CPUID2, so a learner sees what KVM
 * passes through, what the VMM adds (the hypervisor bit, the APIC ids), and, on the kvm_pvm backend, that
 * the guest really reads the host's values. Swift has no inline assembly, hence this one function.
 * Reference: Intel SDM Vol. 2A, "CPUID—CPU Identification".
 */
#ifndef SWIFTLET_CKVM_HOST_CPUID_H
#define SWIFTLET_CKVM_HOST_CPUID_H

#include <stdint.h>

/* CPUID with EAX = leaf, ECX = subleaf; out[0..3] = EAX, EBX, ECX, EDX. Cannot fail on x86-64. */
void ckvm_host_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]);

#endif
