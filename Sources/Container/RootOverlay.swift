// RootOverlay: `container run`'s copy-on-write root (overlayfs, Documentation/filesystems/overlayfs.rst):
// the image is the lower layer and is never written; the container's writes land in an upper directory.
// By default that is a temporary directory (in /dev/shm, else /tmp) removed when the container exits (as `podman run --rm` throws its
// container layer away); `--upper DIR` keeps it in DIR/upper. The overlay itself is mounted by the child in
// its own mount namespace (container_child.c, "rootfs"), so it disappears with the container; this type
// owns the directories: upper, work (overlayfs's scratch space, on the upper's filesystem) and the empty
// mount point. In a user namespace the overlay is mounted by the container's root, which is some other host
// user (`--userns`): the directories then belong to that user, or it could neither reach the mount point nor
// copy files up into the upper layer.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

final class RootOverlay {
    let base: String
    let temporary: Bool
    let lower: String
    var upper: String { base + "/upper" }
    var work: String { base + "/work" }
    var merged: String { base + "/merged" }

    /// overlayfs's mount options. Commas and colons in a path would split them: refused in init. A temporary
    /// upper layer is `volatile` (Linux 5.10+): unmounting skips the sync of the upper filesystem, which
    /// measured 15 to 20 ms of every run here; nobody reads those writes again.
    var options: String { "lowerdir=\(lower),upperdir=\(upper),workdir=\(work)" + (temporary ? ",volatile" : "") }

    /// `owner`: the host uid and gid of the container's root when a user namespace maps it elsewhere.
    init(_ kind: ContainerSpec.Overlay, lower: String, owner: (uid: UInt32, gid: UInt32)? = nil) throws(ContainerError) {
        self.lower = lower
        switch kind {
        case .temporary:
            // tmpfs first: its mkdir and rmdir cost microseconds where ext4's journal made the layer's
            // directories cost 15 to 20 ms a run here (bench/container.sh); the writes live in RAM until exit.
            var made: String?
            for directory in ["/dev/shm", "/tmp"] where made == nil {
                var template = Array("\(directory)/swiftlet-root-XXXXXX".utf8CString)
                if template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil {
                    made = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                }
            }
            guard let made else {
                throw ContainerError(step: "overlay", "cannot create a directory in /dev/shm or /tmp for the container's writes", errno: .init(rawValue: errno))
            }
            base = made
            temporary = true
        case .directory(let directory):
            base = FileSystem.absolute(directory)
            temporary = false
            if mkdir(base, 0o700) != 0 && errno != EEXIST {
                throw ContainerError(step: "overlay", "cannot create \(base)", errno: .init(rawValue: errno))
            }
        }
        for path in [lower, base] where path.contains(",") || path.contains(":") {
            remove()
            throw ContainerError(step: "overlay", "\(path) has a comma or colon, which overlayfs options cannot carry")
        }
        for path in [upper, work, merged] where mkdir(path, 0o755) != 0 && errno != EEXIST {
            let saved = errno
            remove()
            throw ContainerError(step: "overlay", "cannot create \(path)", errno: .init(rawValue: saved))
        }
        guard let owner else { return }
        for path in (temporary ? [base] : []) + [upper, work, merged] where chown(path, owner.uid, owner.gid) != 0 {
            let saved = errno
            remove()
            throw ContainerError(step: "overlay", "cannot give \(path) to the user namespace's root (host uid \(owner.uid))",
                                 errno: .init(rawValue: saved))
        }
    }

    /// Removes the temporary tree (a kept upper stays; its work and mount-point directories go).
    func remove() {
        if temporary { Self.removeTree(base) } else { Self.removeTree(work); rmdir(merged) }
    }

    /// rm -rf without following symlinks (the container wrote this tree; it may hold anything).
    static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            for name in (try? FileSystem.list(path)) ?? [] { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
