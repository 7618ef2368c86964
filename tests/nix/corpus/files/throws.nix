{ fine = 1; broken = throw "from the imported file"; }
