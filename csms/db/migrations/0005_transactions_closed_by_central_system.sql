-- Transactions the central system closed itself: a charger that started a new transaction
-- on a connector with one still open (it forgot it across a reboot), or that booted again
-- and shows the connector free. The charger's own StopTransaction, if it comes later, is
-- still applied once; charger_stop_received_at tells it apart from a retransmission.
ALTER TABLE transactions
    ADD COLUMN closed_by_central_system boolean NOT NULL DEFAULT false,
    ADD COLUMN superseded_by integer,
    ADD COLUMN charger_stop_received_at timestamptz;

UPDATE transactions SET charger_stop_received_at = stop_received_at
    WHERE stop_received_at IS NOT NULL;

-- OCPP 1.6 StopTransaction: a missing reason means Local.
UPDATE transactions SET stop_reason = 'Local'
    WHERE stop_received_at IS NOT NULL AND stop_reason IS NULL;

-- transactionData of a stop that was not the connector's latest transaction was stored
-- with connector 0; its transaction knows the connector.
UPDATE meter_values mv SET connector_id = t.connector_id
    FROM transactions t
    WHERE mv.transaction_id = t.id AND mv.source = 'StopTransaction'
      AND mv.connector_id = 0 AND t.connector_id <> 0;
