DROP TABLE jobs;
DROP TYPE job_state;
