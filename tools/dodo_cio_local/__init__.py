"""The local emulator behind `make run` and the tests: moto as a local AWS endpoint, the Customer.io
sandbox, an API Gateway front and Lambda's SQS poller, around the real handlers. Never deployed."""
