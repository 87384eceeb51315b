// JSONTests: the config.json reader names the field it broke in, and the writer round-trips.
@testable import Container
import Testing

@Suite struct JSONTests {
    @Test func parsesNestedDocumentKeepingKeyOrder() throws {
        let value = try JSONParser.parse(#"{"b": [1, 2.5, -3e2], "a": {"x": null, "y": true}, "s": "t\u00e9\n\ud83d\ude00"}"#)
        guard case .object(let members) = value else {
            Issue.record("not an object")
            return
        }
        #expect(members.map(\.0) == ["b", "a", "s"])
        #expect(members[0].1 == .array([.number(1), .number(2.5), .number(-300)]))
        #expect(members[2].1 == .string("té\n😀"))
    }

    @Test func syntaxErrorNamesTheFieldAndPosition() {
        let text = """
        {
          "process": {
            "env": ["A=1", "B=2" "C=3"]
          }
        }
        """
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(text) }
        do {
            _ = try JSONParser.parse(text)
        } catch {
            #expect(error.field == "process.env[1]")
            #expect(error.line == 3)
            #expect(error.description.contains("in process.env[1]"))
            #expect(error.description.contains("expected ',' or ']'"))
        }
    }

    @Test func rejectsTrailingCommaAndGarbage() {
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(#"{"a": 1,}"#) }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(#"{"a": 1} x"#) }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(#"{"a": tru}"#) }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse("\"unterminated") }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse("[01]") }
    }

    /// Found writing fuzz/OCIConfigFuzzer's round-trip check: 1e400 read as infinity, which formatted() then wrote as "inf".
    @Test func rejectsANumberBeyondDouble() throws {
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse("[1e400]") }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse("-1e309") }
        #expect(try JSONParser.parse("1e308") == .number(1e308))
    }

    @Test func formattedOutputParsesBackToTheSameValue() throws {
        let value = ContainerSpec.ociTemplate(rootless: true, host: HostIdentity(uid: 1000, gid: 1000))
        let text = value.formatted()
        #expect(try JSONParser.parse(text) == value)
        #expect(text.contains("\t\"ociVersion\": \"1.0.0\""))
    }
}
