//! The patterns of the page analyser: the structure of a page, the cheap obfuscations, where
//! request data comes from and what server code does with it. Each is compiled once, on first use.

use std::sync::LazyLock;

use regex::Regex;

pub(super) fn re(pattern: &str) -> Regex {
    // The patterns are constants of this module; a typo is a bug caught by the unit tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("pagecode pattern {pattern}: {e}"))
}

macro_rules! pattern {
    ($name:ident, $p:expr) => {
        pub(super) static $name: LazyLock<Regex> = LazyLock::new(|| re($p));
    };
}

// Structure.
pattern!(
    DIRECTIVE,
    r"(?is)<%\s*@\s*(page|control|webhandler|webservice|application|master)\b([^%]*)%>"
);
pattern!(
    CODE_BEHIND,
    r#"(?i)\b(inherits|codebehind|codefile|src)\s*=\s*["']?[^"'\s>]"#
);
pattern!(BLOCK, r"(?s)<%(.*?)(%>|\z)");
pattern!(SCRIPT, r"(?is)<script\b([^>]*)>(.*?)(</script\s*>|\z)");
pattern!(
    SERVER_ATTR,
    r#"(?i)\brunat\s*=\s*["']*server|\blanguage\s*=\s*["']*(c#|cs|csharp|vb|visualbasic)["'\s>]"#
);
pattern!(
    XSL_SCRIPT,
    r"(?is)<msxsl:script\b[^>]*>(.*?)(</msxsl:script\s*>|\z)"
);
// A handler or web service is code after its directive, whatever the directive is called
// (`<%@ WebHandler … %>`, or just `<%@ Language="C#" Class="H" %>`).
pattern!(HANDLER_REST, r"(?is)<%\s*@[^%]*%>(.*)\z");
pattern!(
    SERVER_INPUT_CONTROL,
    r#"(?i)<(asp:(textbox|fileupload|dropdownlist|listbox|hiddenfield)|(input|textarea|select)\b[^>]*\brunat\s*=\s*["']?server)"#
);

// De-obfuscation.
pattern!(BLOCK_COMMENT, r"(?s)/\*.*?\*/");
pattern!(JOINED_LITERAL, r#""\s*[+&]\s*(_\s*\r?\n\s*)?""#);
pattern!(JOINED_LITERAL_SQ, r"'\s*\+\s*'");
pattern!(HEX_ESCAPE, r"\\x([0-9a-fA-F]{2})");
pattern!(UNICODE_ESCAPE, r"\\u([0-9a-fA-F]{4})");
pattern!(B64_LITERAL, r#"["']([A-Za-z0-9+/]{16,}={0,2})["']"#);
pattern!(
    LONG_BLOB,
    r#"["'][A-Za-z0-9+/=\\]{400,}["']|["'][0-9A-Fa-f]{400,}["']"#
);
pattern!(
    CHAR_CODES,
    r"(?i)(String\.fromCharCode|\bChrW?\s*\(|\(char\)\s*\d|\bchar\s*\(\s*int)"
);

// Where the data comes from.
pattern!(
    REQUEST,
    r"(?i)\bRequest\s*(\.\s*(Item|Form|QueryString|Params|Headers|Cookies|InputStream|BinaryRead|Files|Body|TotalBytes|GetBufferlessInputStream)\b|[\[(]\s*[^)\]\s])|ParseQueryString|\.RawUrl\b"
);
pattern!(
    CONTROL_VALUE,
    r"(?i)\.(Text|Value|PostedFile|FileBytes|FileContent|SelectedValue|InnerText)\b"
);
pattern!(WEB_METHOD, r"(?i)\bWebMethod(Attribute)?\b");

// What the code does.
pattern!(EVAL, r"(?:^|[^\w.$#])eval\s*\(");
pattern!(
    VB_EXECUTE,
    r#"(?i)(?:^|[^\w.])(Execute|ExecuteGlobal|ExecuteStatement)\s*[\(" ]\s*\(?\s*("|Request|[\w.]+\s*\()"#
);
pattern!(
    SCRIPT_ENGINE,
    r"(?i)MSScriptControl|\bScriptControl\b|Microsoft\.JScript\.Eval|JScriptEvaluate|\bVsaEngine\b"
);
pattern!(
    ASSEMBLY_LOAD,
    r#"(?i)\bAssembly\s*\.\s*(Load|LoadFrom|LoadFile|UnsafeLoadFrom)\s*\(|\bAppDomain\s*\.\s*CurrentDomain\s*\.\s*Load\s*\(|\b(GetMethod|InvokeMember)\s*\(\s*"(Load|LoadFrom|LoadFile|UnsafeLoadFrom)""#
);
pattern!(
    NATIVE_CODE,
    r"(?i)\b(VirtualAlloc(Ex)?|VirtualProtect(Ex)?|CreateRemoteThread|WriteProcessMemory|RtlMoveMemory|NtAllocateVirtualMemory|QueueUserAPC|CreateThread)\b[^;\r\n]{0,200}|GetDelegateForFunctionPointer"
);
pattern!(
    DLL_IMPORT,
    r"(?i)\bDllImport\b|\bDeclare\s+(Auto\s+|Ansi\s+|Unicode\s+)?Function\b"
);
pattern!(
    LIST_SINK,
    r"(?i)\.\s*(GetFiles|GetDirectories|GetFileSystemInfos|GetFileSystemEntries|EnumerateFiles|EnumerateDirectories|EnumerateFileSystemEntries)\s*\(|\bnew\s+(System\s*\.\s*IO\s*\.\s*)?DirectoryInfo\s*\(|\.\s*GetFolder\s*\("
);
pattern!(
    DRIVES,
    r"(?i)\bGetLogicalDrives\b|\bDriveInfo\s*\.\s*GetDrives|\.\s*Drives\b"
);
pattern!(
    REFLECT,
    r"(?i)\.\s*(CreateInstance|InvokeMember)\s*\(|\bGetMethod\s*\([^;]{0,80}\)\s*\.\s*Invoke\s*\(|\bActivator\s*\.\s*CreateInstance"
);
pattern!(
    CRYPTO,
    r"(?i)\b(RijndaelManaged|AesManaged|Aes\s*\.\s*Create|TransformFinalBlock|CreateDecryptor|DESCryptoServiceProvider|TripleDESCryptoServiceProvider|RC4)\b"
);
pattern!(
    DECODE,
    r"(?i)FromBase64String|Base64Decode|\batob\s*\(|\bHexToBytes|\bFromHex"
);
pattern!(
    COMPILE,
    r"(?i)CSharpCodeProvider|VBCodeProvider|JScriptCodeProvider|CompileAssemblyFromSource|CodeDomProvider\s*\.\s*CreateProvider|\bCSharpCompilation\b"
);
pattern!(
    PROCESS,
    r#"(?i)\bProcess\s*\.\s*Start\s*\(|\bProcessStartInfo\b|\bnew\s+(System\s*\.\s*Diagnostics\s*\.\s*)?Process\s*\(|WScript\.Shell|Shell\.Application|\.ShellExecute\s*\(|Win32_Process|\bWinExec\b|\bCreateProcess[AW]?\s*\("#
);
pattern!(
    SQL_XP,
    r"(?i)\bxp_cmdshell\b|\bsp_oacreate\b|\baddextendedproc\b|\bxp_regwrite\b|\bsp_makewebtask\b"
);
pattern!(
    DIR_LIST,
    r"(?i)\.\s*(GetFiles|GetDirectories|GetFileSystemInfos|GetFileSystemEntries|EnumerateFiles|EnumerateDirectories)\s*\(|\bGetLogicalDrives\b|\bDriveInfo\s*\.\s*GetDrives|Scripting\.FileSystemObject|\.SubFolders\b"
);
pattern!(
    FS_WRITE,
    r"(?i)\.\s*SaveAs\s*\(|\bFile\s*\.\s*(WriteAll\w*|Delete|Move|Copy|Create|CreateText|AppendAll\w*|AppendText|Replace|SetAttributes|SetCreationTime\w*|SetLastWriteTime\w*)\s*\(|\bStreamWriter\s*\(|\bFileStream\s*\(|\bDirectory\s*\.\s*(Delete|Move|CreateDirectory)\s*\(|\.(CreateTextFile|DeleteFile|DeleteFolder|CopyFile|MoveFile|SaveToFile)\b|\.\s*(MoveTo|CopyTo)\s*\("
);
pattern!(
    WRITE_FROM_INPUT,
    r#"(?i)(\bStreamWriter|\bFileStream|\.\s*SaveAs|\bFile\s*\.\s*(WriteAll\w*|Create\w*|AppendAll\w*|Copy|Move|Delete)|\bFileInfo)\s*\(([^;\r\n]{0,100}?)(\bRequest\b|\.\s*(Text|Value)\b)"#
);
pattern!(
    SCRIPT_LITERAL,
    r#"(?i)"[^"\r\n]{0,200}(<%|<script[^>"]{0,40}runat|<!--\s*#include)"#
);
pattern!(
    SCRIPT_PATH_LITERAL,
    r#"(?i)"[^"\r\n]{0,200}\.(aspx|asp|ashx|asmx|asa|cer|cdx|config)"\s*\)"#
);
pattern!(WRITES_REQUEST, r"(?i)\.\s*Write\w*\s*\(\s*Request\b");
pattern!(
    SQL_CONN,
    r"(?i)\b(SqlConnection|OleDbConnection|OdbcConnection|MySqlConnection|OracleConnection)\b|ADODB\.Connection"
);
pattern!(
    SQL_EXEC,
    r"(?i)\.\s*(ExecuteReader|ExecuteNonQuery|ExecuteScalar|Fill)\s*\(|\bSqlDataAdapter\s*\(|\bOleDbDataAdapter\s*\("
);
pattern!(
    SQL_CONNECT_SINK,
    r"(?i)\bnew\s+(System\s*\.\s*Data\s*\.\s*\w+\s*\.\s*)?(SqlConnection|OleDbConnection|OdbcConnection|MySqlConnection|OracleConnection)\s*\(|\.\s*ConnectionString\s*=[^=]|\.\s*Open\s*\(\s*Request"
);
pattern!(
    SQL_COMMAND_SINK,
    r"(?i)\bnew\s+(System\s*\.\s*Data\s*\.\s*\w+\s*\.\s*)?(SqlCommand|OleDbCommand|OdbcCommand|MySqlCommand|SqlDataAdapter|OleDbDataAdapter|OdbcDataAdapter)\s*\(|\.\s*CommandText\s*=[^=]|\.\s*Execute\s*\(\s*Request"
);
pattern!(
    ASSIGNMENT,
    r"\b([A-Za-z_]\w*)\s*(?:As\s+\w+\s*)?=[^=>]\s*([^;\r\n]*)"
);
pattern!(STRING_LITERAL, r#""([^"\\\r\n]|\\.)*"|@"[^"]*""#);
pattern!(IDENT, r"[A-Za-z_]\w*");
pattern!(MAP_PATH, r"(?i)MapPath\s*\(");
pattern!(
    REQUEST_START,
    r"(?i)\A((this|context|ctx|c|Context|HttpContext\s*\.\s*Current|Page)\s*\.\s*)?Request\b"
);
pattern!(
    CMD_LITERAL,
    r#"(?i)"[^"\r\n]{0,40}(cmd(\.exe)?|powershell(\.exe)?|/bin/sh|bash)\b[^"\r\n]{0,40}"|"\s*/c\s"#
);
pattern!(
    SQL_XP_OFF,
    r"(?i)sp_configure\s*'?\s*(xp_cmdshell|ole automation procedures)'?\s*,\s*0"
);
pattern!(
    SOCKET,
    r"(?i)\bTcpClient\b|\bnew\s+Socket\s*\(|\bTcpListener\b|\bUdpClient\b|\.\s*Connect\s*\(\s*new\s+IPEndPoint|\bSocket\s*\.\s*Connect"
);
pattern!(
    HTTP_FETCH,
    r"(?i)\bHttpWebRequest\b|\bWebRequest\s*\.\s*Create|\bWebClient\b|XMLHTTP|\bHttpClient\b"
);
pattern!(
    REGISTRY_HIVE,
    r"(?i)\bRegistry\s*\.\s*(LocalMachine|ClassesRoot|CurrentUser|Users|CurrentConfig|PerformanceData)\b"
);
pattern!(
    REGISTRY,
    r"(?i)\bRegistryKey\b|\bOpenSubKey\s*\(|\bRegRead\b|\bRegWrite\b|\bStdRegProv\b"
);
pattern!(
    ACCOUNTS,
    r#"(?i)WinNT://|\bnet\s+(user|localgroup)\b|Win32_UserAccount|\bServiceController\b|\bManagementObjectSearcher\b|\bManagementClass\b|winmgmts"#
);
pattern!(
    STUB,
    r#"(?i)\bnew\s+([A-Za-z_]\w*\s*\.\s*)+[A-Za-z_]\w*\s*\(\s*"[0-9a-f]{12,}"\s*\)"#
);
pattern!(IMAGE_HEADER, r"(?i)\A\s*(gif8[79]a|\x{89}PNG|JFIF)");
