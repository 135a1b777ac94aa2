/*
  exhunt built-in YARA pack: web shells and OAB dumps left by the Exchange campaigns.

  Written by the exhunt project from public descriptions of the artefacts (research spec
  sections 5, C-27065-E and C-PS-D; Microsoft's and Volexity's write-ups of the HAFNIUM
  activity; CISA AA21-062A). Not derived from other rule sets. Strings are regular expressions
  on purpose: they describe the shape of the code, and a text scanner reading this file does not
  meet the literal one-liners it looks for.

  Most web-shell capabilities are judged by exhunt's page analyser (EXH-FS-9,
  crates/exhunt-checks/src/pagecode), which reads the server code only and follows request data
  to what it reaches. The file-manager and SQL-console rules that used to be here matched any page
  naming the same APIs (an application's parameterised query, its upload handler) and were
  removed: co-occurrence of API names is not evidence.
*/

rule EXH_ChinaChopper_OneLiner
{
  meta:
    description = "China Chopper one-liner: a server-side script block evaluating a request field as code"
    spec = "5"
    severity = "critical"
  strings:
    $block = /<script[^>]{0,80}runat\s*=\s*["']?server["']?[^>]{0,80}>[^<]{0,300}eval\s*\(\s*Request/ nocase
    $unsafe = /eval\s*\(\s*Request(\s*\.\s*Item)?\s*[\[\(]\s*["'][^"'\r\n]{1,64}["']\s*[\]\)]\s*,\s*["']unsafe["']/ nocase
    $obf = /eval\s*\(\s*Request\s*\[\s*_0x[0-9a-f]{2,8}/ nocase
  condition:
    filesize < 2MB and any of them
}

rule EXH_OAB_VirtualDirectory_Dump_With_Script
{
  meta:
    description = "OAB virtual-directory settings written to a file by Reset-OABVirtualDirectory, carrying script in a URL (CVE-2021-27065 file write)"
    spec = "C-27065-E"
    severity = "critical"
  strings:
    $ext = /(External|Internal)Url\s*:/ nocase
    $auth = "InternalAuthenticationMethods" nocase
    $epa = "ExtendedProtectionTokenChecking" nocase
    $oab = "OfflineAddressBooks" nocase
    $script = /Url\s*:\s*http:\/\/[^\s\/]{1,16}\/\s*<(script|%)/ nocase
  condition:
    filesize < 200KB and $ext and $script and 2 of ($auth, $epa, $oab)
}

rule EXH_ASPX_Eval_Of_Request_Data
{
  meta:
    description = "ASP.NET page that evaluates request data as code (eval/Execute of Request)"
    spec = "5"
    severity = "critical"
  strings:
    $page1 = /<%@\s*Page/ nocase
    $page2 = /runat\s*=\s*["']?server/ nocase
    $eval = /\b(eval|Execute|ExecuteGlobal)\s*\(\s*(System\.Text\.Encoding\.[A-Za-z0-9]+\.GetString\s*\(\s*)?(Convert\.FromBase64String\s*\(\s*)?Request\b/ nocase
  condition:
    filesize < 2MB and ($page1 or $page2) and $eval
}

rule EXH_ASPX_Process_From_Request_Data
{
  meta:
    description = "ASP.NET page that starts a process with a command taken from the request (command shell)"
    spec = "5"
    severity = "critical"
  strings:
    $page1 = /<%@\s*Page/ nocase
    $page2 = /runat\s*=\s*["']?server/ nocase
    $proc = /(ProcessStartInfo|Process\s*\.\s*Start\s*\()/
    $req = /Request\s*(\.\s*(Form|QueryString|Item|Params)|\[)/
    $shell = /(cmd(\.exe)?|powershell(\.exe)?)["']/ nocase
    $redir = /RedirectStandardOutput\s*=\s*true/ nocase
  condition:
    filesize < 2MB and ($page1 or $page2) and $proc and $req and ($shell or $redir)
}

rule EXH_ASPX_Assembly_Load_Of_Request_Bytes
{
  meta:
    description = "ASP.NET page that loads a .NET assembly from request bytes (in-memory loaders: Godzilla, Behinder, SharPyShell-like)"
    spec = "5"
    severity = "critical"
  strings:
    $page1 = /<%@\s*Page/ nocase
    $page2 = /runat\s*=\s*["']?server/ nocase
    $load = /Assembly\s*\.\s*Load\s*\(/
    $req1 = /FromBase64String\s*\(\s*Request/
    $req2 = /Request\s*\.\s*BinaryRead\s*\(/
    $req3 = /Request\s*\.\s*InputStream/
    $crypt = /(RijndaelManaged|AesManaged|TransformFinalBlock)/
    $inst = /\.\s*CreateInstance\s*\(/
  condition:
    filesize < 2MB and ($page1 or $page2) and $load and (any of ($req*)) and ($crypt or $inst)
}

rule EXH_Export_Written_As_Page
{
  meta:
    description = "Mailbox export (PST) or certificate request (DER) whose bytes carry ASP.NET page markup: a ProxyShell-style web shell"
    spec = "C-PS-D"
    severity = "critical"
  strings:
    $page = /<%@\s*Page\s+Language\s*=/ nocase
    $script = /<script[^>]{0,80}runat\s*=\s*["']?server/ nocase
  condition:
    (uint32(0) == 0x4E444221 or uint16(0) == 0x8230) and filesize < 20MB and ($page or $script)
}
