// Monitor command parsing.
import GDBRemote
import Testing

struct MonitorCommandTests {
    @Test func parsesEachCommand() {
        #expect(MonitorCommand.parse("") == .help)
        #expect(MonitorCommand.parse("exits") == .exits)
        #expect(MonitorCommand.parse("last-exits") == .lastExits(20))
        #expect(MonitorCommand.parse("last-exits 5") == .lastExits(5))
        #expect(MonitorCommand.parse("last-exits 100000") == .lastExits(MonitorCommand.lastExitsLimit))
        #expect(MonitorCommand.parse("explain") == .explain(vcpu: nil))
        #expect(MonitorCommand.parse("explain 1") == .explain(vcpu: 1))
        #expect(MonitorCommand.parse("translate 0xffffffff81000000") == .translate(0xffffffff81000000, vcpu: nil))
        #expect(MonitorCommand.parse("translate 4096 3") == .translate(4096, vcpu: 3))
        #expect(MonitorCommand.parse("xp 0x1000") == .readPhysical(address: 0x1000, length: 64))
        #expect(MonitorCommand.parse("xp 4096 16") == .readPhysical(address: 4096, length: 16))
        #expect(MonitorCommand.parse("xp-write 0x1000 90cc") == .writePhysical(address: 0x1000, bytes: [0x90, 0xCC]))
        #expect(MonitorCommand.parse("backend") == .backend)
    }

    @Test(arguments: ["bogus", "last-exits 0", "last-exits x", "translate", "translate 0xzz", "xp", "xp 0x10 0", "xp 0x10 5000",
                      "xp-write 0x10", "xp-write 0x10 9", "xp 1 2 3", "explain x", "explain 1 2", "translate 0x10 -1"])
    func refusesBadCommandsWithAReason(text: String) {
        guard case let .invalid(reason) = MonitorCommand.parse(text) else { Issue.record("\(text) accepted"); return }
        #expect(!reason.isEmpty)
    }

    @Test func helpListsEveryCommand() {
        for command in MonitorCommand.all { #expect(MonitorCommand.helpText.contains(command.name)) }
    }
}
