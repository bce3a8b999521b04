"""What operators need to run the product: the poison queues' view and replay."""
