// IDMapping: one line of /proc/PID/uid_map or gid_map (user_namespaces(7)): `size` ids starting at
// `containerID` inside the namespace are `hostID`... outside it.

public struct IDMapping: Equatable, Sendable, CustomStringConvertible {
    public var containerID: UInt32
    public var hostID: UInt32
    public var size: UInt32

    public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
        self.containerID = containerID
        self.hostID = hostID
        self.size = size
    }

    /// "0 0 4294967295": every id maps to itself; root stays root for files, but its capabilities
    /// only reach what the user namespace owns.
    public static let identity = IDMapping(containerID: 0, hostID: 0, size: UInt32.max)

    /// The line written to uid_map/gid_map.
    public var description: String { "\(containerID) \(hostID) \(size)" }

    /// The host id for a container id, if mapped.
    public static func hostID(for id: UInt32, in mappings: [IDMapping]) -> UInt32? {
        for mapping in mappings where id >= mapping.containerID && UInt64(id) < UInt64(mapping.containerID) + UInt64(mapping.size) {
            return mapping.hostID + (id - mapping.containerID)
        }
        return nil
    }

    /// The text written to the map file: one mapping per line.
    static func mapFileText(_ mappings: [IDMapping]) -> String {
        mappings.map { $0.description + "\n" }.joined()
    }

    /// The user's subordinate range from an /etc/subuid or /etc/subgid text (subuid(5): `name:start:count`,
    /// the name or the numeric id), mapped to container ids 0...count-1: container root is `start` on the host.
    public static func subordinate(user: String, id: UInt32, in text: String, file: String) throws(ContainerError) -> IDMapping {
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count == 3, fields[0] == user || fields[0] == String(id),
                  let start = UInt32(fields[1]), let count = UInt32(fields[2]), count > 0,
                  UInt64(start) + UInt64(count) <= UInt64(UInt32.max) else { continue }
            return IDMapping(containerID: 0, hostID: start, size: count)
        }
        throw ContainerError.invalid("--userns subuid: no subordinate ids for \(user) in \(file)",
                                     hint: "add a line such as \(user):100000:65536 (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 \(user)), or give --userns HOSTID:SIZE")
    }
}

