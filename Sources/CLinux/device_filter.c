/*
 * device_filter.c: the container's device rules as an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE,
 * attached to its cgroup2 directory (BPF_CGROUP_DEVICE): how cgroup v2 controls mknod(2) and open(2) of
 * device nodes, which v1 did with devices.allow and devices.deny (Documentation/admin-guide/cgroup-v2.rst,
 * "Device controller"; the program's context is struct bpf_cgroup_dev_ctx in <linux/bpf.h>). runc's
 * devicefilter and crun's ebpf.c build the same shape of program.
 *
 * The program: load the request (type, access, major, minor) into r2..r5, then test the rules from the last
 * to the first, so the last rule that matches decides (as OCI's list reads); a rule matches when its type
 * is 'a' or the request's, the requested access is a subset of the rule's, and its major and minor are
 * wildcards or equal. Nothing matched: deny (r0 = 0).
 */
#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_INSNS (8 + 12 * SL_DEVICE_RULES_MAX)

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    struct bpf_insn i;
    memset(&i, 0, sizeof i);
    i.code = code;
    i.dst_reg = dst;
    i.src_reg = src;
    i.off = off;
    i.imm = imm;
    return i;
}

/* Appends the instructions of one rule that jump past the rule when it does not match; the jump
 * offsets are relative to the next instruction, so each is "instructions left in this rule". Sets
 * *always when the rule matches every request (then nothing after it can run). */
static int emit_rule(struct bpf_insn *out, const sl_device_rule *rule, int *always)
{
    struct bpf_insn body[12];
    int n = 0;
    /* Each test is one "if not equal, skip to the next rule" jump; the offsets are filled in below. */
    int jumps[4], njumps = 0;
    if (rule->type != 'a') {
        int type = rule->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
        jumps[njumps++] = n;
        body[n++] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, 0, type);
    }
    if ((rule->access & 7) != 7) {
        /* (requested & rule) != requested: the request asks for something the rule does not name. */
        body[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0);
        body[n++] = insn(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_1, 0, 0, (int32_t)(rule->access & 7));
        jumps[njumps++] = n;
        body[n++] = insn(BPF_JMP | BPF_JNE | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0);
    }
    if (rule->major >= 0) {
        jumps[njumps++] = n;
        body[n++] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, 0, (int32_t)rule->major);
    }
    if (rule->minor >= 0) {
        jumps[njumps++] = n;
        body[n++] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 0, (int32_t)rule->minor);
    }
    body[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, rule->allow ? 1 : 0);
    body[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    for (int j = 0; j < njumps; j++) body[jumps[j]].off = (int16_t)(n - jumps[j] - 1);
    *always = njumps == 0;
    memcpy(out, body, (size_t)n * sizeof body[0]);
    return n;
}

static long bpf(int command, union bpf_attr *attr)
{
    return syscall(SYS_bpf, command, attr, sizeof *attr);
}

int sl_device_program_load(const sl_device_rule *rules, size_t count, char *log, size_t log_size)
{
    if (count > SL_DEVICE_RULES_MAX) return -E2BIG;
    for (size_t i = 0; i < count; i++) {
        const sl_device_rule *r = &rules[i];
        if ((r->type != 'a' && r->type != 'b' && r->type != 'c') || r->major > INT32_MAX || r->minor > INT32_MAX) return -EINVAL;
    }
    struct bpf_insn program[MAX_INSNS];
    int n = 0;
    /* r2 = type, r3 = access, r4 = major, r5 = minor (struct bpf_cgroup_dev_ctx, r1 = its address). */
    program[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, 0, 0);
    program[n++] = insn(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xFFFF);
    program[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1, 0, 0);
    program[n++] = insn(BPF_ALU64 | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
    program[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, 4, 0);
    program[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1, 8, 0);
    /* The verifier refuses unreachable instructions: stop after a rule that matches everything (the
     * deny-all a list usually starts with), and only fall through to "deny" when no rule did. */
    int always = 0;
    for (size_t i = count; i > 0 && !always; i--) n += emit_rule(&program[n], &rules[i - 1], &always);
    if (!always) {
        program[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
        program[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    }

    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)program;
    attr.insn_cnt = (uint32_t)n;
    attr.license = (uint64_t)(uintptr_t)"Apache";
    if (log != NULL && log_size > 0) {
        log[0] = '\0';
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = (uint32_t)log_size;
        attr.log_level = 1;
    }
    long fd = bpf(BPF_PROG_LOAD, &attr);
    if (fd < 0 && errno == ENOSPC && log != NULL) {
        /* The verifier's log did not fit: load again without it, the error is what matters. */
        attr.log_buf = 0; attr.log_size = 0; attr.log_level = 0;
        fd = bpf(BPF_PROG_LOAD, &attr);
    }
    return fd < 0 ? -errno : (int)fd;
}

int sl_device_program_attach(int program_fd, const char *cgroup_path)
{
    int cgroup = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroup < 0) return -errno;
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.target_fd = (uint32_t)cgroup;
    attr.attach_bpf_fd = (uint32_t)program_fd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    long r = bpf(BPF_PROG_ATTACH, &attr);
    int error = errno;
    close(cgroup);
    return r < 0 ? -error : 0;
}
