import Testing
@testable import MariaDBStore

@Suite struct MigratorTests {
    @Test func splitsStatementsAtLineEndSemicolons() {
        let text = """
            -- a comment; with a semicolon
            CREATE TABLE a (
                x INT -- trailing; comment
            );

            INSERT INTO a VALUES (1);
            """
        let statements = Migrator.statements(in: text)
        #expect(statements.count == 2)
        #expect(statements[0].hasPrefix("CREATE TABLE a ("))
        #expect(statements[1] == "INSERT INTO a VALUES (1)")
    }
}
