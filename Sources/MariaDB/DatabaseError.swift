/// Errors from the MariaDB client library, keeping the server's diagnostics for the log.
public enum DatabaseError: Error, Sendable, CustomStringConvertible {
    /// `mysql_real_connect` failed (server down, bad socket path or credentials).
    case connect(code: UInt32, message: String)
    /// The server rejected a statement (`mysql_stmt_errno`, SQLSTATE, text).
    case server(code: UInt32, sqlState: String, message: String)
    /// The number of parameters given does not match the placeholders in the statement.
    case parameterCount(expected: Int, given: Int)

    /// The statement cannot have reached the server: connecting failed, or the connection
    /// was already gone when it was sent (CR_SERVER_GONE_ERROR 2006, CR_CONNECTION_ERROR
    /// 2002). Not CR_SERVER_LOST (2013): that one may break after the server ran it.
    var isNotSent: Bool {
        switch self {
        case .connect: return true
        case .server(let code, _, _): return code == 2006 || code == 2002
        case .parameterCount: return false
        }
    }

    /// An INSERT found the key taken (ER_DUP_ENTRY 1062).
    public var isDuplicateKey: Bool {
        if case .server(let code, _, _) = self { return code == 1062 }
        return false
    }

    /// The server rolled the statement back (ER_LOCK_DEADLOCK 1213, ER_LOCK_WAIT_TIMEOUT 1205).
    public var isRolledBack: Bool {
        if case .server(let code, _, _) = self { return code == 1213 || code == 1205 }
        return false
    }

    public var description: String {
        switch self {
        case .connect(let code, let message): return "MariaDB connect error \(code): \(message)"
        case .server(let code, let state, let message): return "MariaDB error \(code) (\(state)): \(message)"
        case .parameterCount(let expected, let given): return "statement takes \(expected) parameters, \(given) given"
        }
    }
}

/// Thrown by a transaction's body when one of its guarded statements found that another
/// writer changed the row first (a versioned update matched nothing): `Connection.transaction`
/// then runs the whole body again on fresh reads.
public struct TransactionConflict: Error, Sendable, CustomStringConvertible {
    public let what: String
    public init(_ what: String) { self.what = what }
    public var description: String { "transaction conflict: \(what)" }
}
