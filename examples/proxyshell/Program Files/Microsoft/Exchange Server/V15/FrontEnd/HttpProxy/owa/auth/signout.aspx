<%@ Page Language="C#" AutoEventWireup="true" Inherits="Microsoft.Exchange.HttpProxy.Signout" %>
<!DOCTYPE html>
<!-- exhunt example placeholder for a shipped Exchange page; not Microsoft's content -->
<html><head><title>Outlook</title></head><body></body></html>
