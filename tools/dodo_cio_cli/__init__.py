"""dodo-cio: the merchant CLI (check, dlq, redrive, replay, reprocess, backfill, send). Installed by pip."""
