// ContainerSpec+Seccomp: reading config.json's `linux.seccomp` (runtime-spec config-linux.md, "Seccomp")
// into a SeccompProfile: defaultAction and defaultErrnoRet, architectures, flags, and syscalls[] with
// names, action, errnoRet and args (index, value, valueTwo, op). What Swiftlet cannot honour is refused
// with a line naming the field (SCMP_ACT_NOTIFY, listenerPath, a flag it does not know), never dropped in
// silence: a container that asked for a filter must not run without it.
import Seccomp

extension OCIReader {
    mutating func seccompProfile(_ value: JSONValue) throws(ContainerError) -> SeccompProfile {
        let field = "linux.seccomp"
        let fields = try object(value, field, known: ["defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls",
                                                      "listenerPath", "listenerMetadata"])
        if fields["listenerPath"] != nil { throw fail("\(field).listenerPath", "seccomp agents (SCMP_ACT_NOTIFY) are not supported by swiftlet") }
        guard let defaultValue = fields["defaultAction"] else { throw fail("\(field).defaultAction", "missing") }
        let defaultErrno = try fields["defaultErrnoRet"].map { v throws(ContainerError) in try integer(v, "\(field).defaultErrnoRet", as: UInt32.self) }
        let defaultAction = try action(try string(defaultValue, "\(field).defaultAction"), errno: defaultErrno, "\(field).defaultAction")

        var architectures: [SeccompArchitecture] = []
        if let list = fields["architectures"] {
            for (i, name) in try strings(list, "\(field).architectures").enumerated() {
                if let architecture = SeccompArchitecture(rawValue: name) {
                    if !architectures.contains(architecture) { architectures.append(architecture) }
                } else {
                    // A profile written for several machines (Docker's names arm, mips, s390 too): not this one's ABIs.
                    warnings.append("config.json: \(field).architectures[\(i)]: \(name) is not an ABI of this machine; skipped")
                }
            }
        }
        if architectures.isEmpty { architectures = [.native] }
        if let flags = fields["flags"] {
            for (i, flag) in try strings(flags, "\(field).flags").enumerated() {
                switch flag {
                case "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW":
                    warnings.append("config.json: \(field).flags[\(i)]: \(flag) is not supported by swiftlet; ignored")
                default:
                    throw fail("\(field).flags[\(i)]", "\(flag) is not supported (SECCOMP_FILTER_FLAG_LOG and SPEC_ALLOW are ignored)")
                }
            }
        }

        var rules: [SeccompRule] = []
        for (i, element) in try array(fields["syscalls"] ?? .array([]), "\(field).syscalls").enumerated() {
            let entryField = "\(field).syscalls[\(i)]"
            let entry = try object(element, entryField, known: ["names", "action", "errnoRet", "args"], silent: ["comment", "includes", "excludes"])
            guard let names = entry["names"], let actionValue = entry["action"] else { throw fail(entryField, "needs names and action") }
            let errnoRet = try entry["errnoRet"].map { v throws(ContainerError) in try integer(v, "\(entryField).errnoRet", as: UInt32.self) }
            let ruleAction = try action(try string(actionValue, "\(entryField).action"), errno: errnoRet, "\(entryField).action")
            var checks: [SeccompArgument] = []
            for (j, arg) in try array(entry["args"] ?? .array([]), "\(entryField).args").enumerated() {
                let argField = "\(entryField).args[\(j)]"
                let a = try object(arg, argField, known: ["index", "value", "valueTwo", "op"])
                guard let index = a["index"], let v = a["value"], let op = a["op"] else { throw fail(argField, "needs index, value and op") }
                let opName = try string(op, "\(argField).op")
                guard let comparison = SeccompArgument.Comparison(rawValue: opName) else {
                    throw fail("\(argField).op", "unknown operator \(opName) (SCMP_CMP_NE, LT, LE, EQ, GE, GT, MASKED_EQ)")
                }
                let argIndex = Int(try integer(index, "\(argField).index", as: UInt8.self))
                let argValue = try integer(v, "\(argField).value", as: UInt64.self)
                let argValueTwo = try a["valueTwo"].map { v throws(ContainerError) in try integer(v, "\(argField).valueTwo", as: UInt64.self) } ?? 0
                do { checks.append(try SeccompArgument(index: argIndex, comparison, argValue, valueTwo: argValueTwo)) } catch {
                    throw fail(argField, error.description)
                }
            }
            let list = try strings(names, "\(entryField).names")
            if list.isEmpty { throw fail("\(entryField).names", "is empty") }
            rules.append(SeccompRule(list, ruleAction, arguments: checks))
        }
        // A call from an ABI the profile does not list: killed, as libseccomp's filters do.
        let profile = SeccompProfile(defaultAction: defaultAction, architectures: architectures, rules: rules, badArchitectureAction: .killProcess)
        for name in profile.unknownNames {
            warnings.append("config.json: \(field): no system call \(name) on this machine; its rules are skipped")
        }
        do { _ = try profile.compile() } catch { throw fail(field, error.description) }
        return profile
    }

    private func action(_ name: String, errno: UInt32?, _ field: String) throws(ContainerError) -> SeccompAction {
        do { return try SeccompAction(ociName: name, errnoRet: errno) } catch { throw fail(field, error.description) }
    }
}
