// MountPlanTests: OCI mount options become MS_* flags and data; the plan's order (spec mounts,
// devices, symlinks, masked, read-only) and its user-namespace adjustments; mountinfo parsing.
@testable import Container
import CLinux
import Testing

@Suite struct MountPlanTests {
    @Test func optionsSplitIntoFlagsAndData() {
        let parsed = MountPlan.parseOptions(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "rprivate", "ro"])
        #expect(parsed.flags == UInt(sl_ms_nosuid | sl_ms_noexec | sl_ms_rdonly))
        #expect(parsed.data == "newinstance,ptmxmode=0666,mode=0620")
        #expect(!parsed.bind)
        let bind = MountPlan.parseOptions(["rbind", "ro", "rw"])
        #expect(bind.bind && bind.recursive)
        #expect(bind.flags == 0, "rw after ro clears it")
    }

    @Test func standardPlanIsInOrder() throws {
        let spec = ContainerSpec.standard(rootPath: "/r", args: ["sh"], host: HostIdentity(uid: 0, gid: 0))
        let plan = try MountPlan.make(for: spec, baseDirectory: "/", cgroupV2Only: false) { _ in }
        #expect(plan.prefix(6).map(\.target) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"])
        #expect(plan.prefix(6).allSatisfy { $0.kind == .filesystem })
        #expect(plan[2].data == "newinstance,ptmxmode=0666,mode=0620,gid=5")
        // The OCI runtime spec's "Default Devices" (config-linux.md), bound from the host's.
        #expect(plan.filter { $0.kind == .bind }.map(\.target) == ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"])
        #expect(plan.filter { $0.kind == .mask }.map(\.target) == CrunTemplate.maskedPaths)
        #expect(plan.filter { $0.kind == .readonly }.map(\.target) == CrunTemplate.readonlyPaths)
        #expect(plan.last?.kind == .readonly)
        #expect(plan.first { $0.target == "/sys" }?.sysfsFallbackBind == false)
    }

    @Test func userNamespaceAdjustments() throws {
        var spec = ContainerSpec.standard(rootPath: "/r", args: ["sh"], host: HostIdentity(uid: 1000, gid: 1000))
        spec.mounts = ContainerSpec.defaultMounts(rootless: false, cgroupMount: true)  // a bundle written for root
        spec.namespaces.removeAll { $0 == .network }
        var warnings: [String] = []
        let plan = try MountPlan.make(for: spec, baseDirectory: "/", cgroupV2Only: false) { warnings.append($0) }
        #expect(plan.first { $0.target == "/dev/pts" }?.data == "newinstance,ptmxmode=0666,mode=0620")
        #expect(plan.first { $0.target == "/sys" }?.sysfsFallbackBind == true, "sysfs needs the netns owner")
        #expect(!plan.contains { $0.target == "/sys/fs/cgroup" })
        #expect(warnings.contains { $0.contains("gid=5 is not mapped") })
        #expect(warnings.contains { $0.contains("cgroup v1") })
    }

    @Test func bindMountsNeedAnExistingSource() throws {
        var spec = ContainerSpec.standard(rootPath: "/r", args: ["sh"], host: HostIdentity(uid: 0, gid: 0))
        spec.mounts = [ContainerSpec.Mount(destination: "/data", type: "bind", source: "/nonexistent-swiftlet", options: ["rbind", "ro"])]
        #expect {
            _ = try MountPlan.make(for: spec, baseDirectory: "/", cgroupV2Only: false) { _ in }
        } throws: { error in
            (error as? ContainerError)?.description == "mounts: mounts[0] /data: bind source /nonexistent-swiftlet (No such file or directory)"
        }
        spec.mounts = [ContainerSpec.Mount(destination: "/data", source: "tmp", options: ["bind", "ro"])]
        let plan = try MountPlan.make(for: spec, baseDirectory: "/", cgroupV2Only: false) { _ in }
        #expect(plan[0] == PlannedMount(kind: .bind, source: "//tmp", target: "/data", flags: UInt(sl_ms_rdonly)))
    }

    @Test func mountinfoLinesParseWithEscapes() {
        let text = """
        36 31 0:33 / /sys/fs/cgroup/devices rw,relatime shared:12 - cgroup cgroup rw,devices
        99 36 8:1 /a\\040b /mnt/with\\040space rw - ext4 /dev/sda1 rw
        garbage
        """
        let mounts = MountInfo.parse(text)
        #expect(mounts.count == 2)
        #expect(mounts[0].optionalFields == ["shared:12"])
        #expect(mounts[0].superOptions == "rw,devices")
        #expect(mounts[1].mountPoint == "/mnt/with space")
        #expect(mounts[1].root == "/a b")
        #expect(mounts[1].optionalFields.isEmpty)
    }
}
