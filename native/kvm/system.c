/* system.c — /dev/kvm itself: opening it, its API version and its capabilities. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define KVM_API_VERSION_EXPECTED 12

int bh_kvm_ioctl_retry(int fd, unsigned long request, void *arg)
{
    int rc;
    do {
        rc = ioctl(fd, request, arg);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

int bh_kvm_open(const char *path, bh_kvm **out, bh_error *err)
{
    if (!out)
        return bh_fail(err, BH_E_INVALID_ARG, 0, "out is NULL");
    *out = NULL;
    if (!path)
        path = "/dev/kvm";

    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return bh_fail(err, BH_E_UNAVAILABLE, e, "cannot open %s: %s", path, strerror(e));
    }
    int version = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION_EXPECTED) {
        int e = version < 0 ? errno : 0;
        close(fd);
        return bh_fail(err, BH_E_UNAVAILABLE, e, "%s: KVM_GET_API_VERSION returned %d, expected %d", path,
                       version, KVM_API_VERSION_EXPECTED);
    }
    int mmap_size = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmap_size < (int)sizeof(struct kvm_run)) {
        int e = mmap_size < 0 ? errno : 0;
        close(fd);
        return bh_fail(err, BH_E_UNAVAILABLE, e, "%s: KVM_GET_VCPU_MMAP_SIZE returned %d", path, mmap_size);
    }
    bh_kvm *kvm = calloc(1, sizeof *kvm);
    if (!kvm) {
        close(fd);
        return bh_fail(err, BH_E_NOMEM, ENOMEM, "out of memory");
    }
    kvm->fd = fd;
    kvm->api_version = version;
    kvm->vcpu_mmap_size = mmap_size;
    *out = kvm;
    return BH_OK;
}

void bh_kvm_close(bh_kvm *kvm)
{
    if (!kvm)
        return;
    close(kvm->fd);
    free(kvm);
}

int bh_kvm_api_version(const bh_kvm *kvm)
{
    return kvm ? kvm->api_version : 0;
}

int bh_kvm_check_extension(const bh_kvm *kvm, unsigned int cap)
{
    if (!kvm)
        return 0;
    int rc = ioctl(kvm->fd, KVM_CHECK_EXTENSION, (unsigned long)cap);
    return rc > 0 ? rc : 0;
}

int bh_kvm_max_vcpus(const bh_kvm *kvm)
{
    /* The KVM API: MAX_VCPUS is the hard limit; older kernels only report NR_VCPUS (the recommended
     * count); with neither, assume 4. */
    int n = bh_kvm_check_extension(kvm, KVM_CAP_MAX_VCPUS);
    if (n <= 0)
        n = bh_kvm_check_extension(kvm, KVM_CAP_NR_VCPUS);
    if (n <= 0)
        n = 4;
    return n;
}

#define CAP(name) {#name, name}

/* What `doctor` reports, and what the VM layer relies on. Values from <linux/kvm.h>. */
static const bh_kvm_cap_info known_caps[] = {
    CAP(KVM_CAP_IRQCHIP),
    CAP(KVM_CAP_HLT),
    CAP(KVM_CAP_USER_MEMORY),
    CAP(KVM_CAP_SET_TSS_ADDR),
    CAP(KVM_CAP_EXT_CPUID),
    CAP(KVM_CAP_NR_VCPUS),
    CAP(KVM_CAP_MAX_VCPUS),
    CAP(KVM_CAP_PIT2),
    CAP(KVM_CAP_IRQFD),
    CAP(KVM_CAP_IOEVENTFD),
    CAP(KVM_CAP_SIGNAL_MSI),
    CAP(KVM_CAP_IMMEDIATE_EXIT),
    CAP(KVM_CAP_READONLY_MEM),
    CAP(KVM_CAP_SET_IDENTITY_MAP_ADDR),
    CAP(KVM_CAP_TSC_DEADLINE_TIMER),
    CAP(KVM_CAP_X2APIC_API),
    CAP(KVM_CAP_KVMCLOCK_CTRL),
    CAP(KVM_CAP_XEN_HVM),
    CAP(KVM_CAP_NESTED_STATE),
    CAP(KVM_CAP_SYNC_REGS),
    CAP(KVM_CAP_SPLIT_IRQCHIP),
    CAP(KVM_CAP_ADJUST_CLOCK),
    CAP(KVM_CAP_GET_MSR_FEATURES),
    CAP(KVM_CAP_IRQ_ROUTING),
    CAP(KVM_CAP_IRQ_INJECT_STATUS),
    CAP(KVM_CAP_MP_STATE),
    CAP(KVM_CAP_VCPU_EVENTS),
    CAP(KVM_CAP_DEBUGREGS),
    CAP(KVM_CAP_XSAVE),
    CAP(KVM_CAP_XCRS),
    CAP(KVM_CAP_TSC_CONTROL),
    CAP(KVM_CAP_GET_TSC_KHZ),
    CAP(KVM_CAP_ONE_REG),
    CAP(KVM_CAP_SET_GUEST_DEBUG),
    CAP(KVM_CAP_COALESCED_MMIO),
    CAP(KVM_CAP_NR_MEMSLOTS),
    CAP(KVM_CAP_PIT_STATE2),
    CAP(KVM_CAP_HYPERV),
    CAP(KVM_CAP_MSI_DEVID),
    CAP(KVM_CAP_X86_DISABLE_EXITS),
    CAP(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2),
    CAP(KVM_CAP_EXIT_HYPERCALL),
    CAP(KVM_CAP_DIRTY_LOG_RING),
};

const bh_kvm_cap_info *bh_kvm_known_caps(size_t *count)
{
    if (count)
        *count = sizeof known_caps / sizeof known_caps[0];
    return known_caps;
}
