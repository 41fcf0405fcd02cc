"""The application layer: between the chain (chain/, stored by node.store) and the web
adapters (api/ for HTTP JSON, explorer_ui/ for pages and the live feed).

- reads: the read model; every query the API and the website ask, from indexed state.
- views: how records are shown (the spec's Job and Miner shapes, ISO times).
- explorer: the data of every explorer page (each page and its JSON twin share one function).
- activity: the last hour of chain activity, kept in memory from the block feed.
- receipts: what verifying a receipt says, and a job's receipts.
- commands: the write commands (submit, claim, complete, ...), which validate against the
  state and hand transactions to the sequencer.
- status: the node's status document.

It raises domain errors (chain.errors, node.producer.NodeUnavailable), never HTTP ones: each
adapter maps them to what it serves.
"""
