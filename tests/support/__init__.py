"""What the tests share: environments and settings (``env``), the app and its clients
(``app``), one polling helper (``wait``), the sample service area built once (``sample``),
rows for the stores (``rows``), reports for ingestion (``ingest``) and the browser console
(``console``). Test modules import from here, never from each other."""
