/*
 * A QEMU TCG plugin that counts guest instructions, for the net bench.
 *
 * Every translated block adds its instruction count to a counter with an
 * inline add (no callback), one counter for kernel code (addresses in the
 * upper half) and one for everything: counting per block is repeatable to
 * about 2% and costs little emulation speed. An MMIO or port access counts
 * as one instruction, whatever the device emulation costs the host.
 *
 * The counters live in a file mapped shared (plugin argument
 * `out=PATH`: two little-endian u64, total then kernel), so the harness
 * reads them while the guest runs, before and after a measurement.
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
typedef struct {
    const char *target_name;
    int version_min, version_cur;
    int system_emulation;
    union {
        struct { int smp_vcpus; int max_vcpus; } system;
    };
} qemu_info_t;
enum qemu_plugin_inline_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                                  qemu_plugin_vcpu_tb_trans_cb_t cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
                                                     enum qemu_plugin_inline_op op,
                                                     void *ptr, uint64_t imm);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static volatile uint64_t *counters;

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint64_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                             (void *)&counters[0], n);
    if (qemu_plugin_tb_vaddr(tb) >> 63) {
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                                 (void *)&counters[1], n);
    }
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *path = NULL;
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        }
    }
    if (!path) {
        fprintf(stderr, "insn-count: needs out=PATH (got %d arguments%s%s)\n", argc, argc ? ": " : "", argc ? argv[0] : "");
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, 4096) != 0) {
        perror("insn-count: counter file");
        return -1;
    }
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        perror("insn-count: mmap");
        return -1;
    }
    counters = m;
    qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
    return 0;
}
