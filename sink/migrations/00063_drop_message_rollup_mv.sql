-- +goose Up
-- +goose NO TRANSACTION
-- message_rollup_mv is made again by 00064 with the column 00061 added (ClickHouse 18.16
-- cannot change a materialized view's query). Messages inserted before 00064 ran are rolled
-- up by 00065.
DROP TABLE IF EXISTS message_rollup_mv;
