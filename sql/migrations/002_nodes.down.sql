DROP TABLE cron_slots;
DROP TABLE queue_settings;
DROP TABLE nodes;
