"""The local runtime behind `warmfleet up`: an embedded Redis and runsc sandboxes as pods."""
