// VS Code client for the .net language: starts `netc lsp` and connects it to .net files.
//
// Everything the editor shows (diagnostics, hover shapes, inlay hints, navigation, completion,
// formatting, semantic tokens) comes from the server; this file only starts it, passes the
// settings on, and restarts it when the path to `netc` changes.

import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
} from "vscode-languageclient/node";

let client: LanguageClient | undefined;

function createClient(): LanguageClient {
  const config = vscode.workspace.getConfiguration("netc");
  const command = config.get<string>("path", "netc") || "netc";
  const serverOptions: ServerOptions = {
    run: { command, args: ["lsp"], transport: TransportKind.stdio },
    debug: { command, args: ["lsp"], transport: TransportKind.stdio },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: "file", language: "netdsl" },
      { scheme: "untitled", language: "netdsl" },
    ],
    // Read by the server at start; later changes arrive as workspace/didChangeConfiguration.
    initializationOptions: {
      inlayHints: config.get<boolean>("inlayHints", true),
    },
    synchronize: { configurationSection: "netc" },
  };
  return new LanguageClient("netc", "netc", serverOptions, clientOptions);
}

async function start(context: vscode.ExtensionContext): Promise<void> {
  client = createClient();
  try {
    await client.start();
  } catch (err) {
    const path = vscode.workspace.getConfiguration("netc").get<string>("path", "netc");
    void vscode.window.showErrorMessage(
      `Could not start \`${path} lsp\`: ${err}. Install netc or set "netc.path".`,
    );
  }
  context.subscriptions.push({ dispose: () => void client?.stop() });
}

async function restart(context: vscode.ExtensionContext): Promise<void> {
  if (client) {
    await client.stop().catch(() => undefined);
    client = undefined;
  }
  await start(context);
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  context.subscriptions.push(
    vscode.commands.registerCommand("netc.restartServer", () => restart(context)),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration("netc.path")) {
        void restart(context);
      }
    }),
  );
  await start(context);
}

export async function deactivate(): Promise<void> {
  if (client) {
    await client.stop();
    client = undefined;
  }
}
