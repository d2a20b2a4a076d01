/*
 * A QEMU TCG plugin that counts guest instructions, for the net bench.
 *
 * Every translated block adds its instruction count to a counter with an
 * inline add (no callback), one counter for kernel code (addresses in the
 * upper half) and one for everything: counting per block is repeatable to
 * about 2% and costs little emulation speed. An MMIO or port access counts
 * as one instruction, whatever the device emulation costs the host.
 *
 * Busy periods: the seL4 idle thread is a `hlt` loop in the kernel, and a
 * callback on every kernel `hlt` closes the period since the last one.
 * Periods in which no user instruction ran (a kernel timer tick while the
 * system waits for the host) are idle; the others are counted as busy.
 * That is what a ping-pong echo costs: the instructions from the request's
 * arrival until the system sleeps again, without the ticks of the wait.
 *
 * The counters live in a file mapped shared (plugin argument `out=PATH`:
 * little-endian u64s: total, kernel, busy, halts, then the open period's
 * start as total and user counts and a sequence word that is odd while a
 * halt updates them), so the harness reads them while the guest runs,
 * before and after a measurement. Busy counts only closed periods; a
 * reader adds the open one if user code ran in it (busy_now in the net
 * peer), since under load the system may not halt for a whole
 * measurement.
 *
 * `profile=PATH` also keeps one record per translated block in a second
 * shared file (header: records in use, capacity; then per record: guest
 * address, instructions executed, instructions in the block, its first
 * bytes), for bench/net/profile.py, which finds each block's program by
 * its bytes and its function by the program's symbols.
 *
 * Debian's QEMU 7.2 ships no qemu-plugin.h; the few entry points used are
 * declared here as QEMU 7.2's plugin API (version 1) defines them.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
    const char *target_name;
    int version_min, version_cur;
    int system_emulation;
    union {
        struct { int smp_vcpus; int max_vcpus; } system;
    };
} qemu_info_t;
enum qemu_plugin_inline_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                                  qemu_plugin_vcpu_tb_trans_cb_t cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
                                                     enum qemu_plugin_inline_op op,
                                                     void *ptr, uint64_t imm);
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                                   qemu_plugin_vcpu_udata_cb_t cb,
                                                   enum qemu_plugin_cb_flags flags,
                                                   void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

enum { TOTAL, KERNEL, BUSY, HALTS, PERIOD_TOTAL, PERIOD_USER, SEQ };
static volatile uint64_t *counters;

/* The profile: one record per translation (a block translated again gets
 * a new record; the script adds them up). */
#define CODE_BYTES 16
struct record {
    uint64_t vaddr;
    uint64_t insns;
    uint32_t n_insns;
    uint32_t n_bytes;
    uint8_t code[CODE_BYTES];
};
#define RECORDS (1u << 20)
static volatile uint64_t *profile_header;
static struct record *records;

static void halted(unsigned int vcpu, void *userdata)
{
    uint64_t total = counters[TOTAL];
    uint64_t user = total - counters[KERNEL];
    (void)vcpu;
    (void)userdata;
    counters[SEQ] += 1;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (user != counters[PERIOD_USER]) {
        counters[BUSY] += total - counters[PERIOD_TOTAL];
    }
    counters[HALTS] += 1;
    counters[PERIOD_TOTAL] = total;
    counters[PERIOD_USER] = user;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    counters[SEQ] += 1;
}

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint64_t n = qemu_plugin_tb_n_insns(tb);
    uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
    int kernel = vaddr >> 63;
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                             (void *)&counters[TOTAL], n);
    if (kernel) {
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                                 (void *)&counters[KERNEL], n);
        for (size_t i = 0; i < n; i++) {
            struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
            const uint8_t *op = qemu_plugin_insn_data(insn);
            if (qemu_plugin_insn_size(insn) == 1 && op[0] == 0xf4) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, halted, QEMU_PLUGIN_CB_NO_REGS, NULL);
            }
        }
    }
    if (records && profile_header[0] < profile_header[1]) {
        struct record *r = &records[profile_header[0]++];
        r->vaddr = vaddr;
        r->n_insns = n;
        r->n_bytes = 0;
        for (size_t i = 0; i < n && r->n_bytes < CODE_BYTES; i++) {
            struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
            const uint8_t *op = qemu_plugin_insn_data(insn);
            size_t len = qemu_plugin_insn_size(insn);
            for (size_t j = 0; j < len && r->n_bytes < CODE_BYTES; j++) {
                r->code[r->n_bytes++] = op[j];
            }
        }
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                                 (void *)&r->insns, n);
    }
}

static void *shared(const char *path, size_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, size) != 0) {
        perror(path);
        return NULL;
    }
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        perror(path);
        return NULL;
    }
    return m;
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *path = NULL, *profile = NULL;
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else if (strncmp(argv[i], "profile=", 8) == 0) {
            profile = argv[i] + 8;
        } else {
            fprintf(stderr, "insn-count: unknown argument '%s' (takes out=PATH, profile=PATH)\n", argv[i]);
            return -1;
        }
    }
    if (!path) {
        fprintf(stderr, "insn-count: needs out=PATH (got %d arguments%s%s)\n", argc, argc ? ": " : "", argc ? argv[0] : "");
        return -1;
    }
    counters = shared(path, 4096);
    if (!counters) {
        return -1;
    }
    if (profile) {
        size_t size = 4096 + (size_t)RECORDS * sizeof(struct record);
        void *m = shared(profile, size);
        if (!m) {
            return -1;
        }
        profile_header = m;
        profile_header[1] = RECORDS;
        records = (struct record *)((char *)m + 4096);
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
    return 0;
}
