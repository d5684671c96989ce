// The TypeScript tasks requester @modelcontextprotocol/ext-tasks drives a `copilot` task against swarm-mcp.
//
//   node ext_tasks_requester.mjs http://127.0.0.1:<port>/mcp      (run by scripts/conformance.sh)
//
// The SDK Client (@modelcontextprotocol/client) connects pinned to 2026-07-28 (server/discover), so the server's
// io.modelcontextprotocol/tasks extension is the v2 generation; ext-tasks then needs `rawDispatch` (the SDK's wire
// codecs do not carry v2 task shapes) and `v2RequestFraming` (the per-request _meta envelope). rawDispatch below
// POSTs the framed JSON-RPC request itself with the 2026-07-28 routing headers (MCP-Protocol-Version, Mcp-Method,
// Mcp-Name). The script calls `copilot` as a task, follows it to a terminal status and prints the status and the
// result; it exits non-zero unless the task completes with the session completed: a session that fails is still a
// completed task whose tool result says so (structuredContent.status "failed"), so the task status alone is not enough.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { createTaskSessionFromClient, taskViewFromExecutionEvent } from "@modelcontextprotocol/ext-tasks/client";

const url = process.argv[2];
if (!url) {
  console.error("usage: node ext_tasks_requester.mjs URL");
  process.exit(2);
}
const PROTOCOL = "2026-07-28";
const TASKS = "io.modelcontextprotocol/tasks";
const clientInfo = { name: "ext-tasks-requester", version: "1.0.0" };
const clientCapabilities = { extensions: { [TASKS]: {} } };

let nextId = 1;
async function rawDispatch(request, options = {}) {
  const { method, params = {} } = request;
  const headers = {
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
    "MCP-Protocol-Version": PROTOCOL,
    "Mcp-Method": method,
    ...(options.context?.headers ?? {}),
  };
  const name = method === "tools/call" ? params.name : method.startsWith("tasks/") ? params.taskId : undefined;
  if (typeof name === "string") headers["Mcp-Name"] = name;
  const body = JSON.stringify({ jsonrpc: "2.0", id: `ext-tasks-${nextId++}`, method, params });
  const signals = [options.signal, AbortSignal.timeout(options.context?.requestTimeoutMs ?? 60_000)].filter(Boolean);
  const response = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.any(signals) });
  const text = await response.text();
  let message;
  if ((response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    // The last JSON-RPC response on the stream (notifications before it are not ours to route here).
    for (const line of text.split(/\r?\n/)) {
      if (!line.startsWith("data:")) continue;
      const data = JSON.parse(line.slice(5));
      if ("result" in data || "error" in data) message = data;
    }
  } else if (text) {
    message = JSON.parse(text);
  }
  if (!message || !("result" in message || "error" in message))
    throw new Error(`${method}: HTTP ${response.status} with no JSON-RPC response: ${text.slice(0, 300)}`);
  return "error" in message ? { kind: "error", error: message.error } : { kind: "result", result: message.result };
}

const client = new Client(clientInfo, {
  capabilities: clientCapabilities,
  versionNegotiation: { mode: { pin: PROTOCOL } },
});
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
console.log(`connected: era ${client.getProtocolEra()}, server tasks extension ${JSON.stringify(client.getServerCapabilities()?.extensions?.[TASKS])}`);

const session = createTaskSessionFromClient(client, {
  endpointId: `swarm-mcp ${url}`,
  rawDispatch,
  v2RequestFraming: { protocolVersion: PROTOCOL, clientInfo, clientCapabilities },
});
let ok = false;
try {
  console.log(`task capabilities: ${JSON.stringify(session.capabilities)}`);
  const execution = await session.callTool(
    "copilot",
    { task: "say hello", max_rounds: 3 },
    { task: { preference: "require" }, requestTimeoutMs: 60_000 },
  );
  console.log(`execution: ${execution.kind}${execution.kind === "task" ? ` ${execution.handle.taskId}` : ""}`);
  const settled = await Promise.race([
    execution.settle({
      onEvent: (event) => {
        const view = taskViewFromExecutionEvent(event);
        if (event.type === "task" && view) console.log(`task ${view.taskId}: ${view.status}${view.statusMessage ? ` (${view.statusMessage})` : ""}`);
      },
    }),
    new Promise((_, reject) => setTimeout(() => reject(new Error("the task did not settle within 120 s")), 120_000).unref()),
  ]);
  const { outcome } = settled;
  const sessionStatus = outcome.status === "completed" ? outcome.result.structuredContent?.status : undefined;
  console.log(`final status: ${outcome.status}${sessionStatus ? ` (session ${sessionStatus})` : ""}`);
  if (outcome.status === "completed") console.log(`result: ${JSON.stringify(outcome.result)}`);
  else if (outcome.status === "failed") console.log(`error: ${outcome.error.message} ${JSON.stringify(outcome.error.data ?? null)}`);
  if (execution.kind !== "task") console.log("the call was not a task");
  ok = execution.kind === "task" && outcome.status === "completed" && outcome.result.isError !== true && sessionStatus === "completed";
} finally {
  await session.close();
  await client.close();
}
process.exit(ok ? 0 : 1);
