"""The drill carrier: a Twilio-compatible simulator (REST API, status callbacks, inbound SMS,
an FCM-shaped push gateway). Loaded only in drill mode; imports nothing of ours but its own,
since it stands for a vendor."""
