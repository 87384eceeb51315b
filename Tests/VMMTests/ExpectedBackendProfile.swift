// The backend profile written out as the tests expect it, independently of BackendProfile's own list: the
// parameters measured as needed under kvm_pvm (docs/07-backends.md: the emulator lacks XSAVE, POPCNT, SMAP's
// CLAC/STAC...; nopvspin and clocksource=kvm-clock from the SMP boots; retain_initrd saves the emulated
// poisoning of the freed initramfs; swiftlet.pvm_syscall turns on the minimal kernel's syscall-by-page-fault
// entry, guest/linux/patches), and nothing on hardware KVM. A change to the profile must change
// this file too, on purpose.
import KVM

enum ExpectedBackendProfile {
    static let pvm = [
        "rodata=off", "nopvspin", "clocksource=kvm-clock", "retain_initrd", "swiftlet.pvm_syscall",
        "clearcpuid=smap,smep,popcnt,cx16,xsave,avx,avx2,bmi1,bmi2,erms,fsrm,movbe,rdrand,rdseed,fsgsbase,sse4_1,sse4_2,ssse3,aes,pclmulqdq",
    ]

    static func parameters(_ backend: Backend) -> [String] {
        switch backend {
        case .pvm: pvm
        case .intel, .amd, .unknown: []
        }
    }
}
